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
                                       std::string description, int32_t n_gpu_layers);

  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  llama_model* get() const { return model_; }
  const llama_vocab* vocab() const { return llama_model_get_vocab(model_); }
  const std::string& description() const { return description_; }
  int32_t n_embd() const { return llama_model_n_embd(model_); }
  int32_t n_ctx_train() const { return llama_model_n_ctx_train(model_); }
  // Classifier outputs (1 unless the GGUF names labels) and their names ("" when unnamed).
  int32_t n_cls_out() const { return static_cast<int32_t>(llama_model_n_cls_out(model_)); }
  std::string ClassifierLabel(int32_t i) const;
  // A named chat template from the GGUF ("rerank", ...), or null; nullptr name: the default.
  const char* ChatTemplate(const char* name) const {
    return llama_model_chat_template(model_, name);
  }
  bool has_memory_rewind() const { return !llama_model_is_recurrent(model_); }
  bool owned() const { return keep_alive_ == nullptr; }
  // Layers offloaded to a GPU when loaded (negative: all).
  int32_t n_gpu_layers() const { return n_gpu_layers_; }

 private:
  Model(llama_model* model, std::shared_ptr<void> keep_alive, std::string description,
        int32_t n_gpu_layers);

  llama_model* model_;
  std::shared_ptr<void> keep_alive_;
  std::string description_;
  int32_t n_gpu_layers_;
};

}  // namespace stars
