#include "llama/model_file_check.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llama/gguf_metadata.h"
#include "stars/errors.h"

namespace stars {
namespace {

// llama.cpp's limits (src/llama-hparams.h of the pinned version).
constexpr int64_t kMaxLayers = 512;
constexpr int64_t kMaxExperts = 1024;
constexpr std::array<std::string_view, 4> kRopeScalingTypes = {"none", "linear", "yarn",
                                                               "longrope"};

[[noreturn]] void Refuse(const std::string& path, const std::string& problem) {
  throw ModelLoadError("'" + path + "': " + problem);
}

void CheckFile(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path fs_path(path);
  if (!std::filesystem::exists(fs_path, ec)) {
    throw ModelNotFoundError("model file not found: '" + path + "'");
  }
  if (std::filesystem::is_directory(fs_path, ec)) {
    throw ModelLoadError("model path is a directory, not a GGUF file: '" + path + "'");
  }
  const auto size = std::filesystem::file_size(fs_path, ec);
  if (ec) throw ModelLoadError("cannot read model file '" + path + "': " + ec.message());
  if (size == 0) throw ModelLoadError("model file is empty: '" + path + "'");
  std::array<char, 4> magic{};
  std::ifstream in(fs_path, std::ios::binary);
  if (!in.read(magic.data(), magic.size()) || std::string(magic.data(), 4) != "GGUF") {
    throw ModelLoadError("not a GGUF file (no 'GGUF' magic at its start): '" + path + "'");
  }
}

// llama_vocab::load asserts that every token string is distinct, after naming empty ones. A
// model without a vocabulary cannot read a prompt (llama.cpp aborts when asked to), and a
// SentencePiece vocabulary without byte tokens throws std::out_of_range out of llama_tokenize
// on the first character it does not hold.
void CheckVocab(const GgufMetadata& meta) {
  const auto model = meta.String("tokenizer.ggml.model");
  if (model && (*model == "none" || *model == "no_vocab")) {
    Refuse(meta.path(), "tokenizer.ggml.model is '" + *model +
                            "': the model has no vocabulary, so it cannot read a prompt");
  }
  const auto tokens = meta.StringArray("tokenizer.ggml.tokens");
  if (!tokens) return;

  std::unordered_map<std::string, size_t> seen;
  seen.reserve(tokens->size());
  for (size_t i = 0; i < tokens->size(); ++i) {
    std::string word((*tokens)[i]);
    if (word.empty()) word = "[EMPTY_" + std::to_string(i) + "]";
    const auto [it, inserted] = seen.emplace(std::move(word), i);
    if (!inserted) {
      Refuse(meta.path(), "vocabulary token " + std::to_string(i) +
                              " repeats the string of token " + std::to_string(it->second) + " ('" +
                              it->first + "'); llama.cpp needs distinct token strings");
    }
  }
  if (model && *model == "llama") {
    for (int byte = 0; byte < 256; ++byte) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", byte);
      if (seen.find(name) == seen.end()) {
        Refuse(meta.path(), std::string("tokenizer.ggml.model is 'llama' (SentencePiece) but the "
                                        "vocabulary has no byte token ") +
                                name + ": is it another tokenizer's vocabulary?");
      }
    }
  }
}

// The header values llama_model::load_hparams asserts on.
void CheckHparams(const GgufMetadata& meta, const std::string& arch) {
  const std::string& path = meta.path();
  // GGML_ASSERT(eps >= 0.0f) in the norm ops, at the first decode; NaN fails it too.
  for (const char* name : {".attention.layer_norm_rms_epsilon", ".attention.layer_norm_epsilon"}) {
    const auto eps = meta.Float(arch + name);
    if (eps && !(std::isfinite(*eps) && *eps >= 0.0f)) {
      Refuse(path, arch + name + " is " + std::to_string(*eps) + ", not a finite value >= 0");
    }
  }
  const auto n_layer = meta.Int(arch + ".block_count");
  if (!n_layer) return;  // llama.cpp reports the missing key itself
  if (*n_layer < 1 || *n_layer > kMaxLayers) {
    Refuse(path, arch + ".block_count is " + std::to_string(*n_layer) + ", not in [1, " +
                     std::to_string(kMaxLayers) + "]");
  }
  const auto nextn = meta.Int(arch + ".nextn_predict_layers");
  if (nextn && (*nextn < 0 || *nextn > *n_layer)) {
    Refuse(path, arch + ".nextn_predict_layers is " + std::to_string(*nextn) +
                     " but the model has " + std::to_string(*n_layer) + " blocks");
  }
  const int64_t n_expert = meta.Int(arch + ".expert_count").value_or(0);
  int64_t n_used_max = 0;
  if (const auto used = meta.IntOrIntArray(arch + ".expert_used_count")) {
    for (int64_t u : *used) n_used_max = std::max(n_used_max, u);
  }
  const int64_t n_groups = meta.Int(arch + ".expert_group_count").value_or(0);
  const std::string experts = arch + ".expert_count is " + std::to_string(n_expert) + ", ";
  if (n_expert < 0 || n_expert > kMaxExperts) {
    Refuse(path, experts + "not in [0, " + std::to_string(kMaxExperts) + "]");
  }
  if (n_used_max > n_expert || (n_expert > 0 && n_used_max <= 0)) {
    Refuse(path, experts + "but " + arch + ".expert_used_count is " + std::to_string(n_used_max));
  }
  if (n_groups != 0 && (n_expert == 0 || n_groups >= n_expert || n_expert % n_groups != 0)) {
    Refuse(path, experts + "but " + arch + ".expert_group_count is " + std::to_string(n_groups));
  }
  if (const auto rope = meta.String(arch + ".rope.scaling.type")) {
    bool known = false;
    for (std::string_view type : kRopeScalingTypes) known = known || *rope == type;
    if (!known) {
      Refuse(path, arch + ".rope.scaling.type is '" + *rope +
                       "'; llama.cpp knows none, linear, yarn and longrope");
    }
  }
}

// Shapes llama.cpp would refuse with a generic failure (or, for an empty dimension, assert on).
void CheckTensors(const GgufMetadata& meta, const std::string& arch) {
  const std::string& path = meta.path();
  int64_t last_block = -1;
  for (const GgufMetadata::TensorShape& tensor : meta.tensors()) {
    for (int d = 0; d < tensor.n_dims; ++d) {
      if (tensor.ne[d] < 1) Refuse(path, "tensor " + tensor.name + " has an empty dimension");
    }
    if (tensor.name.rfind("blk.", 0) == 0) {
      last_block =
          std::max<int64_t>(last_block, std::strtoll(tensor.name.c_str() + 4, nullptr, 10));
    }
  }
  const auto n_layer = meta.Int(arch + ".block_count");
  if (n_layer && last_block >= *n_layer) {
    Refuse(path, "tensors name block " + std::to_string(last_block) + " but " + arch +
                     ".block_count is " + std::to_string(*n_layer));
  }
  const auto tokens = meta.StringArray("tokenizer.ggml.tokens");
  for (const GgufMetadata::TensorShape& tensor : meta.tensors()) {
    if (tensor.name != "token_embd.weight" || tensor.n_dims != 2 || !tokens) continue;
    if (tensor.ne[1] != static_cast<int64_t>(tokens->size())) {
      Refuse(path, "token_embd.weight has " + std::to_string(tensor.ne[1]) +
                       " rows but the vocabulary has " + std::to_string(tokens->size()) +
                       " tokens");
    }
  }
}

}  // namespace

void CheckModelFile(const std::string& path) {
  CheckFile(path);
  const GgufMetadata meta(path, /*with_tensors=*/true);
  const auto arch = meta.String("general.architecture");
  CheckVocab(meta);
  if (!arch) return;  // llama.cpp reports it
  CheckHparams(meta, *arch);
  CheckTensors(meta, *arch);
}

}  // namespace stars
