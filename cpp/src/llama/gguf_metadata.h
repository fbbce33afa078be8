// Typed reads of a GGUF file's key-value metadata through ggml's gguf API. llama.cpp's own
// llama_model_meta_val_str prints float arrays with 6 decimals, too lossy for weights stored
// as metadata (a reward head), so those are read here, without loading any tensor data.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct gguf_context;
struct ggml_context;

namespace stars {

class GgufMetadata {
 public:
  // A tensor's name and shape as the header states them (ne[0] innermost, 1 past n_dims).
  struct TensorShape {
    std::string name;
    int n_dims = 0;
    std::array<int64_t, 4> ne{};
  };

  // Reads the header of `path`, and the tensors' shapes too when `with_tensors`. Throws
  // ModelNotFoundError for a missing file and ModelLoadError when it is not a readable GGUF.
  explicit GgufMetadata(const std::string& path, bool with_tensors = false);
  ~GgufMetadata();
  GgufMetadata(const GgufMetadata&) = delete;
  GgufMetadata& operator=(const GgufMetadata&) = delete;

  // std::nullopt when `key` is absent; ModelLoadError when it holds another type.
  std::optional<std::vector<float>> FloatArray(const std::string& key) const;
  std::optional<float> Float(const std::string& key) const;
  std::optional<int64_t> Int(const std::string& key) const;
  std::optional<std::string> String(const std::string& key) const;
  // An integer, or an array of integers (a per-layer value), as a list.
  std::optional<std::vector<int64_t>> IntOrIntArray(const std::string& key) const;
  // Views into this object's memory, cut at a NUL as llama.cpp reads them.
  std::optional<std::vector<std::string_view>> StringArray(const std::string& key) const;
  // Empty unless constructed `with_tensors`.
  const std::vector<TensorShape>& tensors() const { return tensors_; }

  const std::string& path() const { return path_; }

 private:
  int64_t Find(const std::string& key) const;
  [[noreturn]] void WrongType(const std::string& key, const char* expected) const;

  std::string path_;
  gguf_context* ctx_ = nullptr;
  std::vector<TensorShape> tensors_;
};

}  // namespace stars
