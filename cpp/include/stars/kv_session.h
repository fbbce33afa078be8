// Forks, rewinds and batched decodes over one llama.cpp context: the KV bookkeeping the engine
// and the KV-cached rewards run on, exposed for tests and tools that check it against decoding
// from scratch. Not thread-safe: one caller at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "stars/model.h"

namespace stars {

class KvSession {
 public:
  // A context of `n_ctx` cells and `n_seq_max` sequence ids on `model` (n_threads 0: every
  // hardware thread). Throws ParameterError for sizes llama.cpp cannot take and Error when it
  // cannot create the context.
  KvSession(std::shared_ptr<Model> model, int32_t n_ctx, int32_t n_seq_max, int32_t n_threads);
  ~KvSession();
  KvSession(const KvSession&) = delete;
  KvSession& operator=(const KvSession&) = delete;

  // A free, empty sequence id. Throws Error when every id is in use.
  int32_t Acquire();
  // A new sequence sharing every cell of `source`. Throws ParameterError for an id not in use,
  // Error when every id is in use.
  int32_t Fork(int32_t source);
  // Drops the cells of `seq` at positions >= `pos`. Throws ParameterError for an id not in use
  // or a negative position.
  void Rewind(int32_t seq, int32_t pos);
  // Frees `seq` and its cells.
  void Release(int32_t seq);
  // Frees every sequence.
  void Clear();

  // Decodes rows (tokens[i] at positions[i] of seq_ids[i], with logits when outputs[i]) as one
  // batch; returns each output row's batch index, in order. Throws ParameterError when the four
  // differ in length, Error when the rows do not fit one batch (n_ctx), DecodeError when
  // llama.cpp refuses them.
  std::vector<int32_t> Decode(const std::vector<int32_t>& tokens,
                              const std::vector<int32_t>& positions,
                              const std::vector<int32_t>& seq_ids,
                              const std::vector<bool>& outputs);

  // The n_vocab logits of the output at `batch_index` of the last Decode, valid until the next
  // Decode. Throws DecodeError when that row had no output.
  const float* Logits(int32_t batch_index) const;

  int32_t n_vocab() const;
  int32_t n_ctx() const;
  int32_t n_seq_max() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace stars
