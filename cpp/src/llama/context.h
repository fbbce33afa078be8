// A llama.cpp context over a Model, with every return code of decoding checked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "llama.h"
#include "stars/model.h"
#include "stars/params.h"
#include "stars/runtime.h"

namespace stars {

class Batch;

// Why llama.cpp cannot output the input of layer `layer` of `model` (out of [0, n_layer), or an
// architecture whose graph does not expose layer inputs: asking would abort the process at the
// next decode), or "" when it can.
std::string LayerInputProblem(const Model& model, int32_t layer);

struct ContextOptions {
  // Shared layout: the cells all sequences share. Isolated: the cells of each sequence's own
  // stream (the context holds n_ctx x n_seq_max; llama.cpp rounds n_ctx up to 256).
  int32_t n_ctx = 4096;
  int32_t n_seq_max = 1;
  KvLayout layout = KvLayout::kShared;
  int32_t n_batch = 0;    // 0: n_ctx
  int32_t n_ubatch = 0;   // 0: min(512, n_batch); encoders need a whole batch in one ubatch
  int32_t n_threads = 0;  // 0: all hardware threads
  bool embeddings = false;
  enum llama_pooling_type pooling = LLAMA_POOLING_TYPE_UNSPECIFIED;
  KvType kv_type = KvType::kF16;
};

class Context {
 public:
  // Throws Error when llama.cpp cannot create the context (for example out of memory) and
  // ParameterError for an n_ctx or n_seq_max it cannot take.
  Context(std::shared_ptr<Model> model, const ContextOptions& options);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Decodes `batch`. Throws DecodeError when llama.cpp finds no KV slot (1), aborts (2), rejects
  // the batch (-1) or fails (< -1); the message names the code and the batch size.
  void Decode(const Batch& batch);
  void Decode(const llama_batch& batch);

  // The logits of the token at `batch_index` in the last decoded batch (n_vocab floats).
  // Throws DecodeError when that token had no output.
  const float* Logits(int32_t batch_index) const;

  // The hidden state of the token at `batch_index` (n_embd floats; embeddings on, pooling NONE).
  const float* TokenEmbeddings(int32_t batch_index) const;

  // Turns llama.cpp's embeddings output on or off for the next decodes of a context made
  // without it (the policy's, for a probe). Every token of a batch is then an output, so Decode
  // refuses a batch of more tokens than its output rows. False, changing nothing, when the
  // context pools its embeddings (only per-token hidden states are read).
  bool SetTokenEmbeddings(bool on);

  // Makes every later decode output the input of layer `layer` (0 <= layer < n_layer) for every
  // token (llama.cpp's per-layer embeddings output). Throws ParameterError when the model's
  // graph does not expose that layer's input (llama.cpp would abort at the next decode).
  void OutputLayerInput(int32_t layer);

  // The input of layer `layer` of the token at `batch_index` in the last decoded batch (n_embd
  // floats), after OutputLayerInput(layer). Batch order: valid in the shared layout only, where
  // llama.cpp splits a batch into micro-batches in order.
  const float* LayerInput(int32_t layer, int32_t batch_index) const;

  // The pooled output of sequence `seq` in the last batch: n_cls_out scores under RANK pooling.
  const float* SequenceEmbeddings(int32_t seq) const;

  // Attaches `chain` to sequence `seq` for llama.cpp's backend sampling: that sequence's output
  // rows are then sampled inside the graph (SampledToken) instead of giving logits. Returns
  // false, attaching nothing, for an embeddings context or a chain llama.cpp cannot offload.
  // The chain must stay alive until DetachSampler. Either call makes llama.cpp re-reserve its
  // graph at the next decode.
  bool AttachSampler(llama_seq_id seq, llama_sampler* chain);
  void DetachSampler(llama_seq_id seq);

  // The token sampled inside the graph for the output at `batch_index` of the last batch.
  // Throws DecodeError when that row had no backend sampler, or llama.cpp could not run the
  // whole chain on the backend (then sampling="host" is the way).
  llama_token SampledToken(int32_t batch_index) const;

  // The pooling in effect (the model's own when the options left it unspecified).
  enum llama_pooling_type pooling() const { return llama_pooling_type(ctx_); }

  // Empties the memory (KV cache) of every sequence; a no-op for models without one.
  void ClearMemory() { llama_memory_clear(memory(), true); }

  llama_context* get() const { return ctx_; }
  llama_memory_t memory() const { return llama_get_memory(ctx_); }
  const Model& model() const { return *model_; }
  // Every cell of the context, and the cells one sequence can hold (n_ctx() when shared).
  int32_t n_ctx() const { return static_cast<int32_t>(llama_n_ctx(ctx_)); }
  int32_t n_ctx_seq() const { return static_cast<int32_t>(llama_n_ctx_seq(ctx_)); }
  KvLayout layout() const { return layout_; }
  int32_t n_batch() const { return static_cast<int32_t>(llama_n_batch(ctx_)); }
  int32_t n_ubatch() const { return static_cast<int32_t>(llama_n_ubatch(ctx_)); }
  int32_t n_threads() const { return llama_n_threads(ctx_); }
  int32_t n_seq_max() const { return static_cast<int32_t>(llama_n_seq_max(ctx_)); }
  // Embeddings on (made so, or SetTokenEmbeddings): llama.cpp then outputs every token of a
  // batch, marked or not.
  bool embeddings() const { return embeddings_ || token_embeddings_; }

 private:
  std::shared_ptr<Model> model_;
  llama_context* ctx_ = nullptr;
  bool embeddings_ = false;
  bool token_embeddings_ = false;  // SetTokenEmbeddings(true)
  KvLayout layout_ = KvLayout::kShared;
  int32_t n_outputs_max_ = 0;  // rows one decode may output (llama.cpp aborts past them)
  int32_t layer_input_ = -1;   // the layer whose input decodes output, or -1
  int32_t n_decoded_ = 0;      // tokens of the last decode when it succeeded, else 0
};

}  // namespace stars
