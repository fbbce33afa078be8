// A llama_batch that records, for every token added, the batch index its output lands at.
#pragma once

#include <cstdint>

#include "llama.h"

namespace stars {

class Batch {
 public:
  explicit Batch(int32_t capacity);
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void Clear() { batch_.n_tokens = 0; }

  // Adds `token` at `pos` of sequence `seq`. Returns the batch index to read its logits with
  // (Context::Logits) when `output` is set, -1 otherwise. Throws Error when the batch is full.
  int32_t Add(llama_token token, llama_pos pos, llama_seq_id seq, bool output);

  // Makes room for `capacity` tokens; drops what the batch holds.
  void Reserve(int32_t capacity);

  // Tokens [first, first + n) as a llama_batch that views this one's arrays.
  llama_batch View(int32_t first, int32_t n) const;

  int32_t size() const { return batch_.n_tokens; }
  int32_t capacity() const { return capacity_; }
  bool empty() const { return batch_.n_tokens == 0; }
  const llama_batch& get() const { return batch_; }

 private:
  llama_batch batch_;
  int32_t capacity_;
};

}  // namespace stars
