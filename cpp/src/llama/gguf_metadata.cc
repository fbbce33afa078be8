#include "llama/gguf_metadata.h"

#include <filesystem>

#include "ggml.h"
#include "gguf.h"
#include "stars/errors.h"

namespace stars {

GgufMetadata::GgufMetadata(const std::string& path, bool with_tensors) : path_(path) {
  if (!std::filesystem::exists(path))
    throw ModelNotFoundError("model file not found: '" + path + "'");
  gguf_init_params params{};
  params.no_alloc = true;  // the header only: no tensor data is read
  ggml_context* meta = nullptr;
  params.ctx = with_tensors ? &meta : nullptr;
  ctx_ = gguf_init_from_file(path.c_str(), params);
  if (ctx_ == nullptr) {
    throw ModelLoadError("'" + path +
                         "' is not a readable GGUF file: its header is truncated or corrupt");
  }
  if (meta == nullptr) return;
  const int64_t n = gguf_get_n_tensors(ctx_);
  tensors_.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const char* name = gguf_get_tensor_name(ctx_, i);
    const ggml_tensor* tensor = ggml_get_tensor(meta, name);
    if (tensor == nullptr) continue;
    TensorShape shape{name, ggml_n_dims(tensor), {}};
    for (int d = 0; d < 4; ++d) shape.ne[d] = tensor->ne[d];
    tensors_.push_back(std::move(shape));
  }
  ggml_free(meta);
}

GgufMetadata::~GgufMetadata() {
  if (ctx_ != nullptr) gguf_free(ctx_);
}

int64_t GgufMetadata::Find(const std::string& key) const {
  return gguf_find_key(ctx_, key.c_str());
}

void GgufMetadata::WrongType(const std::string& key, const char* expected) const {
  throw ModelLoadError("'" + path_ + "': metadata " + key + " is not " + expected);
}

std::optional<std::vector<float>> GgufMetadata::FloatArray(const std::string& key) const {
  const int64_t id = Find(key);
  if (id < 0) return std::nullopt;
  if (gguf_get_kv_type(ctx_, id) != GGUF_TYPE_ARRAY ||
      gguf_get_arr_type(ctx_, id) != GGUF_TYPE_FLOAT32)
    WrongType(key, "an array of float32");
  const auto* data = static_cast<const float*>(gguf_get_arr_data(ctx_, id));
  return std::vector<float>(data, data + gguf_get_arr_n(ctx_, id));
}

std::optional<float> GgufMetadata::Float(const std::string& key) const {
  const int64_t id = Find(key);
  if (id < 0) return std::nullopt;
  if (gguf_get_kv_type(ctx_, id) != GGUF_TYPE_FLOAT32) WrongType(key, "a float32");
  return gguf_get_val_f32(ctx_, id);
}

std::optional<int64_t> GgufMetadata::Int(const std::string& key) const {
  const int64_t id = Find(key);
  if (id < 0) return std::nullopt;
  switch (gguf_get_kv_type(ctx_, id)) {
    case GGUF_TYPE_INT32:
      return gguf_get_val_i32(ctx_, id);
    case GGUF_TYPE_UINT32:
      return gguf_get_val_u32(ctx_, id);
    case GGUF_TYPE_INT64:
      return gguf_get_val_i64(ctx_, id);
    default:
      WrongType(key, "an integer");
  }
}

std::optional<std::string> GgufMetadata::String(const std::string& key) const {
  const int64_t id = Find(key);
  if (id < 0) return std::nullopt;
  if (gguf_get_kv_type(ctx_, id) != GGUF_TYPE_STRING) WrongType(key, "a string");
  return std::string(gguf_get_val_str(ctx_, id));
}

std::optional<std::vector<int64_t>> GgufMetadata::IntOrIntArray(const std::string& key) const {
  const int64_t id = Find(key);
  if (id < 0) return std::nullopt;
  if (gguf_get_kv_type(ctx_, id) != GGUF_TYPE_ARRAY) return std::vector<int64_t>{*Int(key)};
  const size_t n = gguf_get_arr_n(ctx_, id);
  const void* data = gguf_get_arr_data(ctx_, id);
  std::vector<int64_t> values(n);
  switch (gguf_get_arr_type(ctx_, id)) {
    case GGUF_TYPE_INT32:
      for (size_t i = 0; i < n; ++i) values[i] = static_cast<const int32_t*>(data)[i];
      return values;
    case GGUF_TYPE_UINT32:
      for (size_t i = 0; i < n; ++i) values[i] = static_cast<const uint32_t*>(data)[i];
      return values;
    default:
      WrongType(key, "an integer or an array of 32-bit integers");
  }
}

std::optional<std::vector<std::string_view>> GgufMetadata::StringArray(
    const std::string& key) const {
  const int64_t id = Find(key);
  if (id < 0) return std::nullopt;
  if (gguf_get_kv_type(ctx_, id) != GGUF_TYPE_ARRAY ||
      gguf_get_arr_type(ctx_, id) != GGUF_TYPE_STRING)
    WrongType(key, "an array of strings");
  const size_t n = gguf_get_arr_n(ctx_, id);
  std::vector<std::string_view> values;
  values.reserve(n);
  for (size_t i = 0; i < n; ++i) values.emplace_back(gguf_get_arr_str(ctx_, id, i));
  return values;
}

}  // namespace stars
