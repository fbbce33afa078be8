#include "llama/gguf_metadata.h"

#include <filesystem>

#include "gguf.h"
#include "stars/errors.h"

namespace stars {

GgufMetadata::GgufMetadata(const std::string& path) : path_(path) {
  if (!std::filesystem::exists(path))
    throw ModelNotFoundError("model file not found: '" + path + "'");
  gguf_init_params params{};
  params.no_alloc = true;  // the header only: no tensor data is read
  params.ctx = nullptr;
  ctx_ = gguf_init_from_file(path.c_str(), params);
  if (ctx_ == nullptr) throw ModelLoadError("'" + path + "' is not a readable GGUF file");
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

}  // namespace stars
