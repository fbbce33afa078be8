// A llama.cpp model: loaded from a GGUF file, or borrowed from another owner (a llama_cpp.Llama).
// llama.cpp's own types appear only as opaque pointers, so this header needs no llama.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct llama_model;
struct llama_vocab;

namespace stars {

// One message of a chat: a role ("system", "user", "assistant") and its text.
struct ChatMessage {
  std::string role;
  std::string content;
};

class Model {
 public:
  // Loads a GGUF file, checking it first for what llama.cpp would abort on. Throws
  // ModelNotFoundError for a missing path and ModelLoadError (naming the file and the problem,
  // llama.cpp's logged reason included) for an empty, malformed or refused file.
  static std::shared_ptr<Model> Load(const std::string& path, int32_t n_gpu_layers);

  // Wraps a model someone else owns. `keep_alive` holds the owner until this handle is gone
  // (for a llama_cpp.Llama: a reference to the Python object). Throws ModelLoadError for a null
  // `model` or `keep_alive`.
  // `path` is the GGUF file the owner loaded ("" when unknown; a probe needs it to identify the
  // model).
  static std::shared_ptr<Model> Borrow(llama_model* model, std::shared_ptr<void> keep_alive,
                                       std::string description, int32_t n_gpu_layers,
                                       std::string path = "");

  // Frees the weights when owned.
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  llama_model* get() const { return model_; }
  const llama_vocab* vocab() const;
  // The path, or the owner's description.
  const std::string& description() const { return description_; }
  // The GGUF file the weights came from; "" for a borrowed model whose owner did not say.
  const std::string& path() const { return path_; }
  // general.architecture ("llama", "qwen3", ...) and the number of layers.
  std::string architecture() const;
  int32_t n_layer() const;
  int32_t n_embd() const;
  // Attention heads: query heads and key/value heads (grouped-query attention shares each KV
  // head among n_head / n_head_kv query heads).
  int32_t n_head() const;
  int32_t n_head_kv() const;
  // Elements of one key head: the GGUF's <arch>.attention.key_length, else n_embd / n_head.
  int32_t n_embd_head_k() const;
  int32_t n_ctx_train() const;
  int32_t n_vocab() const;
  // Classifier outputs (1 unless the GGUF names labels) and their names ("" when unnamed).
  int32_t n_cls_out() const;
  std::string ClassifierLabel(int32_t i) const;
  // A named chat template from the GGUF ("rerank", ...), or null; nullptr name: the default.
  const char* ChatTemplate(const char* name) const;
  // False for recurrent models, whose memory cannot be cut back to a position.
  bool has_memory_rewind() const;
  bool owned() const { return keep_alive_ == nullptr; }
  // Layers offloaded to a GPU when loaded (negative: all).
  int32_t n_gpu_layers() const { return n_gpu_layers_; }
  // True when layers were asked onto a GPU and this llama.cpp build has a GPU backend.
  bool offloaded() const;

  // The vocabulary's token ids for `text`. `add_special` adds BOS/EOS as the model wants;
  // `parse_special` reads control-token text ("<|im_start|>") as control tokens. Throws Error
  // when llama.cpp's tokenizer fails.
  std::vector<int32_t> Tokenize(const std::string& text, bool add_special,
                                bool parse_special) const;
  // The text of `tokens`, with llama.cpp's spacing rules; control tokens render as nothing.
  // The text may end inside a UTF-8 character. Throws ParameterError for an id outside the
  // vocabulary.
  std::string Detokenize(const std::vector<int32_t>& tokens) const;
  // `messages` rendered by the GGUF's chat template, ending with the assistant turn's opening.
  // Throws ChatTemplateError when the model has no template or llama.cpp cannot apply it.
  std::string ApplyChatTemplate(const std::vector<ChatMessage>& messages) const;

 private:
  Model(llama_model* model, std::shared_ptr<void> keep_alive, std::string description,
        int32_t n_gpu_layers, std::string path);

  llama_model* model_;
  std::shared_ptr<void> keep_alive_;
  std::string description_;
  int32_t n_gpu_layers_;
  std::string path_;
};

}  // namespace stars
