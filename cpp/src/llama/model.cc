#include "stars/model.h"

#include <cstdlib>
#include <string>
#include <utility>

#include "llama.h"
#include "llama/backend.h"
#include "llama/model_file_check.h"
#include "llama/tokenizer.h"
#include "stars/errors.h"
#include "stars/log.h"

namespace stars {
std::shared_ptr<Model> Model::Load(const std::string& path, int32_t n_gpu_layers) {
  CheckModelFile(path);
  EnsureBackend();
  llama_model_params params = llama_model_default_params();
  params.n_gpu_layers = n_gpu_layers;
  // Repacked CPU weights (Q4_0, Q4_K, IQ4_NL on AVX2 and ARM) switch matrix kernels with the
  // number of rows in a batch, so a sequence's logits would depend on how many others step with
  // it. Plain weights give every row the same bits, and measured no slower on a 2-core x86 CPU.
  params.use_extra_bufts = false;
  TakeFirstLogError();
  llama_model* model = llama_model_load_from_file(path.c_str(), params);
  if (model == nullptr) {
    // llama.cpp names the problem only in its log.
    const std::string reason = TakeFirstLogError();
    throw ModelLoadError(
        "llama.cpp could not load the GGUF file '" + path +
        "': " + (reason.empty() ? "unsupported architecture, truncated or corrupt file" : reason));
  }
  return std::shared_ptr<Model>(new Model(model, nullptr, path, n_gpu_layers, path));
}

std::shared_ptr<Model> Model::Borrow(llama_model* model, std::shared_ptr<void> keep_alive,
                                     std::string description, int32_t n_gpu_layers,
                                     std::string path) {
  if (model == nullptr) throw ModelLoadError("borrowed model handle is null: " + description);
  if (keep_alive == nullptr) throw ModelLoadError("borrowed model needs its owner: " + description);
  EnsureBackend();
  return std::shared_ptr<Model>(new Model(model, std::move(keep_alive), std::move(description),
                                          n_gpu_layers, std::move(path)));
}

Model::Model(llama_model* model, std::shared_ptr<void> keep_alive, std::string description,
             int32_t n_gpu_layers, std::string path)
    : model_(model),
      keep_alive_(std::move(keep_alive)),
      description_(std::move(description)),
      n_gpu_layers_(n_gpu_layers),
      path_(std::move(path)) {}

std::string Model::architecture() const {
  char arch[128] = {0};
  if (llama_model_meta_val_str(model_, "general.architecture", arch, sizeof(arch)) < 0) return "";
  return arch;
}

int32_t Model::n_layer() const { return llama_model_n_layer(model_); }

const llama_vocab* Model::vocab() const { return llama_model_get_vocab(model_); }
int32_t Model::n_embd() const { return llama_model_n_embd(model_); }
int32_t Model::n_head() const { return llama_model_n_head(model_); }
int32_t Model::n_head_kv() const { return llama_model_n_head_kv(model_); }
int32_t Model::n_embd_head_k() const {
  char value[64] = {0};
  char arch[64] = {0};
  if (llama_model_meta_val_str(model_, "general.architecture", arch, sizeof(arch)) > 0) {
    const std::string key = std::string(arch) + ".attention.key_length";
    if (llama_model_meta_val_str(model_, key.c_str(), value, sizeof(value)) > 0) {
      return static_cast<int32_t>(std::strtol(value, nullptr, 10));
    }
  }
  return n_head() > 0 ? n_embd() / n_head() : 0;
}
int32_t Model::n_ctx_train() const { return llama_model_n_ctx_train(model_); }
int32_t Model::n_vocab() const { return llama_vocab_n_tokens(vocab()); }
int32_t Model::n_cls_out() const { return static_cast<int32_t>(llama_model_n_cls_out(model_)); }
const char* Model::ChatTemplate(const char* name) const {
  return llama_model_chat_template(model_, name);
}
bool Model::offloaded() const { return n_gpu_layers_ != 0 && llama_supports_gpu_offload(); }
bool Model::has_memory_rewind() const { return !llama_model_is_recurrent(model_); }

std::vector<int32_t> Model::Tokenize(const std::string& text, bool add_special,
                                     bool parse_special) const {
  return Tokenizer(*this).Tokenize(text, add_special, parse_special);
}

std::string Model::Detokenize(const std::vector<int32_t>& tokens) const {
  const int32_t n = n_vocab();
  for (const int32_t token : tokens) {
    // llama.cpp indexes its vocabulary with the id unchecked.
    if (token < 0 || token >= n) {
      throw ParameterError("token id " + std::to_string(token) + " is outside the vocabulary [0, " +
                           std::to_string(n) + ") of " + description_);
    }
  }
  return Tokenizer(*this).Detokenize(tokens);
}

std::string Model::ApplyChatTemplate(const std::vector<ChatMessage>& messages) const {
  return Tokenizer(*this).ApplyChatTemplate(messages);
}

std::string Model::ClassifierLabel(int32_t i) const {
  const char* label = llama_model_cls_label(model_, static_cast<uint32_t>(i));
  return label == nullptr ? std::string() : std::string(label);
}

Model::~Model() {
  if (owned()) llama_model_free(model_);
}

}  // namespace stars
