#include "llama/probe_file.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

#include "ggml.h"
#include "gguf.h"
#include "reward/probe_head.h"
#include "stars/errors.h"

namespace stars {
namespace {

constexpr const char* kVersion = "stars.probe.version";
constexpr const char* kLayer = "stars.probe.layer";
constexpr const char* kHeadKind = "stars.probe.head";    // linear, mlp-relu, mlp-tanh
constexpr const char* kHidden = "stars.probe.n_hidden";  // MLP only
constexpr const char* kBias = "stars.probe.bias";
constexpr const char* kOutputScale = "stars.probe.output_scale";
constexpr const char* kOutputOffset = "stars.probe.output_offset";
constexpr const char* kPolicyArch = "stars.probe.policy.architecture";
constexpr const char* kPolicyEmbd = "stars.probe.policy.n_embd";
constexpr const char* kPolicyLayers = "stars.probe.policy.n_layer";
constexpr const char* kPolicyHash = "stars.probe.policy.token_embd_fnv1a64";
constexpr const char* kPolicyName = "stars.probe.policy.name";

constexpr const char* kMean = "probe.mean";
constexpr const char* kStd = "probe.std";
constexpr const char* kWeight = "probe.weight";
constexpr const char* kHiddenWeight = "probe.hidden.weight";
constexpr const char* kHiddenBias = "probe.hidden.bias";

constexpr const char* kTokenEmbd = "token_embd.weight";

struct GgufFree {
  void operator()(gguf_context* ctx) const { gguf_free(ctx); }
};
struct GgmlFree {
  void operator()(ggml_context* ctx) const { ggml_free(ctx); }
};
using GgufPtr = std::unique_ptr<gguf_context, GgufFree>;
using GgmlPtr = std::unique_ptr<ggml_context, GgmlFree>;

// Reads one probe file, each problem a ModelLoadError naming it.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      throw ModelNotFoundError("probe file not found: '" + path + "'");
    }
    CheckSizes();
    gguf_init_params params{};
    params.no_alloc = false;  // the tensors are small: read them whole
    ggml_context* data = nullptr;
    params.ctx = &data;
    gguf_.reset(gguf_init_from_file(path.c_str(), params));
    data_.reset(data);
    if (gguf_ == nullptr || data_ == nullptr) {
      Fail("not a readable GGUF file: it is truncated or corrupt");
    }
  }

  // The header alone first: the tensors must lie within the file and be a probe's few, so that
  // reading them never asks for more memory than the file holds.
  void CheckSizes() const {
    gguf_init_params params{};
    params.no_alloc = true;
    params.ctx = nullptr;
    const GgufPtr header(gguf_init_from_file(path_.c_str(), params));
    if (header == nullptr) Fail("not a readable GGUF file: it is truncated or corrupt");
    const int64_t arch = gguf_find_key(header.get(), "general.architecture");
    const std::string kind = arch >= 0 && gguf_get_kv_type(header.get(), arch) == GGUF_TYPE_STRING
                                 ? gguf_get_val_str(header.get(), arch)
                                 : "";
    if (kind != kProbeArchitecture) {
      Fail("not a probe file (general.architecture is '" + kind + "', not '" + kProbeArchitecture +
           "')");
    }
    std::error_code ec;
    const uint64_t file_size = std::filesystem::file_size(path_, ec);
    const int64_t n = gguf_get_n_tensors(header.get());
    if (n > 8) Fail(std::to_string(n) + " tensors: a probe has at most 5");
    const uint64_t data = gguf_get_data_offset(header.get());
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t end =
          data + gguf_get_tensor_offset(header.get(), i) + gguf_get_tensor_size(header.get(), i);
      if (ec || end > file_size) Fail("truncated: its tensor data ends past the file's end");
    }
  }

  [[noreturn]] void Fail(const std::string& problem) const {
    throw ModelLoadError("probe file '" + path_ + "': " + problem);
  }

  int64_t Key(const char* key, gguf_type type, const char* what) const {
    const int64_t id = gguf_find_key(gguf_.get(), key);
    if (id < 0) Fail(std::string("missing ") + key + " (is it a probe file?)");
    if (gguf_get_kv_type(gguf_.get(), id) != type) Fail(std::string(key) + " is not " + what);
    return id;
  }

  std::string String(const char* key) const {
    return gguf_get_val_str(gguf_.get(), Key(key, GGUF_TYPE_STRING, "a string"));
  }
  int32_t Int(const char* key) const {
    return gguf_get_val_i32(gguf_.get(), Key(key, GGUF_TYPE_INT32, "an int32"));
  }
  uint32_t Uint(const char* key) const {
    return gguf_get_val_u32(gguf_.get(), Key(key, GGUF_TYPE_UINT32, "a uint32"));
  }
  uint64_t Uint64(const char* key) const {
    return gguf_get_val_u64(gguf_.get(), Key(key, GGUF_TYPE_UINT64, "a uint64"));
  }
  float Float(const char* key) const {
    return gguf_get_val_f32(gguf_.get(), Key(key, GGUF_TYPE_FLOAT32, "a float32"));
  }
  bool Has(const char* key) const { return gguf_find_key(gguf_.get(), key) >= 0; }

  // An F32 tensor of shape (ne0) or (ne0, ne1), copied out.
  std::vector<float> Tensor(const char* name, int64_t ne0, int64_t ne1 = 1) const {
    const ggml_tensor* t = ggml_get_tensor(data_.get(), name);
    if (t == nullptr) Fail(std::string("missing tensor ") + name);
    if (t->type != GGML_TYPE_F32) Fail(std::string("tensor ") + name + " is not F32");
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
      Fail(std::string("tensor ") + name + " has shape [" + std::to_string(t->ne[0]) + ", " +
           std::to_string(t->ne[1]) + ", " + std::to_string(t->ne[2]) + ", " +
           std::to_string(t->ne[3]) + "], expected [" + std::to_string(ne0) + ", " +
           std::to_string(ne1) + "]");
    }
    const auto* values = static_cast<const float*>(t->data);
    return std::vector<float>(values, values + ne0 * ne1);
  }

 private:
  std::string path_;
  GgufPtr gguf_;
  GgmlPtr data_;
};

std::string FileName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

}  // namespace

uint64_t HashFileBytes(const std::string& path, uint64_t offset, uint64_t size) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) throw ModelLoadError("cannot open '" + path + "' to identify it");
  if (std::fseek(file.get(), static_cast<long>(offset), SEEK_SET) != 0) {
    throw ModelLoadError("'" + path + "' is shorter than its tensor data says");
  }
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a 64 offset basis
  std::vector<unsigned char> chunk(1 << 20);
  uint64_t left = size;
  while (left > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(left, chunk.size()));
    const size_t got = std::fread(chunk.data(), 1, want, file.get());
    if (got != want) throw ModelLoadError("'" + path + "' is shorter than its tensor data says");
    for (size_t i = 0; i < got; ++i) {
      hash ^= chunk[i];
      hash *= 1099511628211ULL;  // FNV prime
    }
    left -= got;
  }
  return hash;
}

PolicyIdentity IdentifyPolicy(const Model& model) {
  const std::string& path = model.path();
  if (path.empty()) {
    throw ModelLoadError("cannot identify " + model.description() +
                         " for a probe: its GGUF file is unknown");
  }
  gguf_init_params params{};
  params.no_alloc = true;
  params.ctx = nullptr;
  GgufPtr gguf(gguf_init_from_file(path.c_str(), params));
  if (gguf == nullptr) throw ModelLoadError("'" + path + "' is not a readable GGUF file");
  const int64_t id = gguf_find_tensor(gguf.get(), kTokenEmbd);
  if (id < 0) {
    throw ModelLoadError("'" + path + "' has no " + kTokenEmbd + " to identify it by");
  }
  PolicyIdentity identity;
  identity.architecture = model.architecture();
  identity.n_embd = model.n_embd();
  identity.n_layer = model.n_layer();
  identity.token_embd_hash =
      HashFileBytes(path, gguf_get_data_offset(gguf.get()) + gguf_get_tensor_offset(gguf.get(), id),
                    gguf_get_tensor_size(gguf.get(), id));
  identity.name = FileName(path);
  return identity;
}

ProbeFile ReadProbeFile(const std::string& path) {
  const Reader r(path);
  ProbeFile probe;
  const uint32_t version = r.Uint(kVersion);
  if (version != kProbeVersion) {
    r.Fail("version " + std::to_string(version) + " is not the supported " +
           std::to_string(kProbeVersion));
  }
  probe.policy.architecture = r.String(kPolicyArch);
  probe.policy.n_embd = static_cast<int32_t>(r.Uint(kPolicyEmbd));
  probe.policy.n_layer = static_cast<int32_t>(r.Uint(kPolicyLayers));
  probe.policy.token_embd_hash = r.Uint64(kPolicyHash);
  if (r.Has(kPolicyName)) probe.policy.name = r.String(kPolicyName);
  if (probe.policy.n_embd < 1 || probe.policy.n_embd > (1 << 20)) {
    r.Fail(std::string(kPolicyEmbd) + "=" + std::to_string(probe.policy.n_embd) +
           " is out of range");
  }
  probe.layer = r.Int(kLayer);
  if (probe.layer < 0 || probe.layer > probe.policy.n_layer) {
    r.Fail("layer " + std::to_string(probe.layer) + " is outside [0, " +
           std::to_string(probe.policy.n_layer) + "]");
  }
  ProbeHeadParams& head = probe.head;
  const std::string kind = r.String(kHeadKind);
  const int64_t n_in = probe.policy.n_embd;
  head.n_in = probe.policy.n_embd;
  head.mean = r.Tensor(kMean, n_in);
  head.std = r.Tensor(kStd, n_in);
  if (kind == "linear") {
    head.weight = r.Tensor(kWeight, n_in);
  } else if (kind == "mlp-relu" || kind == "mlp-tanh") {
    head.activation = kind == "mlp-relu" ? ProbeActivation::kRelu : ProbeActivation::kTanh;
    const uint32_t n_hidden = r.Uint(kHidden);
    if (n_hidden < 1 || n_hidden > (1u << 16)) {
      r.Fail(std::string(kHidden) + "=" + std::to_string(n_hidden) + " is out of range");
    }
    head.n_hidden = static_cast<int32_t>(n_hidden);
    head.hidden_weight = r.Tensor(kHiddenWeight, n_in, n_hidden);  // ne0 = n_in: one row a unit
    head.hidden_bias = r.Tensor(kHiddenBias, n_hidden);
    head.weight = r.Tensor(kWeight, n_hidden);
  } else {
    r.Fail(std::string(kHeadKind) + " '" + kind + "' is not linear, mlp-relu or mlp-tanh");
  }
  head.bias = r.Float(kBias);
  head.output_scale = r.Float(kOutputScale);
  head.output_offset = r.Float(kOutputOffset);
  const std::string problem = ProbeHeadProblem(head);
  if (!problem.empty()) r.Fail(problem);
  return probe;
}

void WriteProbeFile(const std::string& path, const ProbeFile& probe) {
  const ProbeHeadParams& head = probe.head;
  const std::string problem = ProbeHeadProblem(head);
  if (!problem.empty()) throw ParameterError("probe head: " + problem);
  if (head.n_in != probe.policy.n_embd) {
    throw ParameterError("probe head: " + std::to_string(head.n_in) +
                         " inputs, but the policy's n_embd is " +
                         std::to_string(probe.policy.n_embd));
  }
  if (probe.layer < 0 || probe.layer > probe.policy.n_layer) {
    throw ParameterError("layer", "layer must be in [0, " + std::to_string(probe.policy.n_layer) +
                                      "], got " + std::to_string(probe.layer));
  }
  const bool mlp = head.n_hidden > 0;
  const std::pair<const char*, const std::vector<float>*> tensors[] = {
      {kMean, &head.mean},
      {kStd, &head.std},
      {kWeight, &head.weight},
      {kHiddenWeight, mlp ? &head.hidden_weight : nullptr},
      {kHiddenBias, mlp ? &head.hidden_bias : nullptr}};
  size_t bytes = 0;
  for (const auto& [name, values] : tensors) {
    if (values != nullptr) bytes += values->size() * sizeof(float) + ggml_tensor_overhead();
  }
  ggml_init_params init{};
  init.mem_size = bytes + 1024;
  init.no_alloc = false;
  GgmlPtr data(ggml_init(init));
  if (data == nullptr) throw Error("cannot allocate " + std::to_string(bytes) + " bytes");
  GgufPtr gguf(gguf_init_empty());
  gguf_set_val_str(gguf.get(), "general.architecture", kProbeArchitecture);
  gguf_set_val_u32(gguf.get(), kVersion, kProbeVersion);
  gguf_set_val_i32(gguf.get(), kLayer, probe.layer);
  gguf_set_val_str(gguf.get(), kHeadKind,
                   !mlp                                        ? "linear"
                   : head.activation == ProbeActivation::kRelu ? "mlp-relu"
                                                               : "mlp-tanh");
  if (mlp) gguf_set_val_u32(gguf.get(), kHidden, static_cast<uint32_t>(head.n_hidden));
  gguf_set_val_f32(gguf.get(), kBias, head.bias);
  gguf_set_val_f32(gguf.get(), kOutputScale, head.output_scale);
  gguf_set_val_f32(gguf.get(), kOutputOffset, head.output_offset);
  gguf_set_val_str(gguf.get(), kPolicyArch, probe.policy.architecture.c_str());
  gguf_set_val_u32(gguf.get(), kPolicyEmbd, static_cast<uint32_t>(probe.policy.n_embd));
  gguf_set_val_u32(gguf.get(), kPolicyLayers, static_cast<uint32_t>(probe.policy.n_layer));
  gguf_set_val_u64(gguf.get(), kPolicyHash, probe.policy.token_embd_hash);
  gguf_set_val_str(gguf.get(), kPolicyName, probe.policy.name.c_str());
  for (const auto& [name, values] : tensors) {
    if (values == nullptr) continue;
    ggml_tensor* t =
        std::string(name) == kHiddenWeight
            ? ggml_new_tensor_2d(data.get(), GGML_TYPE_F32, head.n_in, head.n_hidden)
            : ggml_new_tensor_1d(data.get(), GGML_TYPE_F32, static_cast<int64_t>(values->size()));
    ggml_set_name(t, name);
    std::memcpy(t->data, values->data(), values->size() * sizeof(float));
    gguf_add_tensor(gguf.get(), t);
  }
  if (!gguf_write_to_file(gguf.get(), path.c_str(), false)) {
    throw Error("cannot write the probe file '" + path + "'");
  }
}

}  // namespace stars
