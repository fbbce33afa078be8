// Typed reads of a GGUF file's key-value metadata through ggml's gguf API. llama.cpp's own
// llama_model_meta_val_str prints float arrays with 6 decimals, too lossy for weights stored
// as metadata (a reward head), so those are read here, without loading any tensor data.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct gguf_context;

namespace stars {

class GgufMetadata {
 public:
  // Reads the header of `path`. Throws ModelNotFoundError for a missing file and
  // ModelLoadError when it is not a readable GGUF.
  explicit GgufMetadata(const std::string& path);
  ~GgufMetadata();
  GgufMetadata(const GgufMetadata&) = delete;
  GgufMetadata& operator=(const GgufMetadata&) = delete;

  // std::nullopt when `key` is absent; ModelLoadError when it holds another type.
  std::optional<std::vector<float>> FloatArray(const std::string& key) const;
  std::optional<float> Float(const std::string& key) const;
  std::optional<int64_t> Int(const std::string& key) const;

  const std::string& path() const { return path_; }

 private:
  int64_t Find(const std::string& key) const;
  [[noreturn]] void WrongType(const std::string& key, const char* expected) const;

  std::string path_;
  gguf_context* ctx_ = nullptr;
};

}  // namespace stars
