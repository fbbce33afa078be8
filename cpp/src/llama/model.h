// A llama.cpp model handle, owned (loaded from a file) or borrowed (from a llama_cpp.Llama).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "llama.h"

namespace stars {

class Model {
 public:
  // Loads a GGUF file. Throws ModelNotFoundError for a missing path and ModelLoadError for an
  // empty file, a file without the GGUF magic, or one that llama.cpp rejects.
  static std::shared_ptr<Model> Load(const std::string& path, int32_t n_gpu_layers);

  // Wraps a model someone else owns. `keep_alive` holds the owner until this handle is gone
  // (for a llama_cpp.Llama: a reference to the Python object).
  static std::shared_ptr<Model> Borrow(llama_model* model, std::shared_ptr<void> keep_alive,
                                       std::string description);

  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  llama_model* get() const { return model_; }
  const llama_vocab* vocab() const { return llama_model_get_vocab(model_); }
  const std::string& description() const { return description_; }
  bool owned() const { return keep_alive_ == nullptr; }

 private:
  Model(llama_model* model, std::shared_ptr<void> keep_alive, std::string description);

  llama_model* model_;
  std::shared_ptr<void> keep_alive_;
  std::string description_;
};

}  // namespace stars
