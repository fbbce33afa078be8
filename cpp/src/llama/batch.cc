#include "llama/batch.h"

#include <string>

#include "stars/errors.h"

namespace stars {

Batch::Batch(int32_t capacity) : batch_(llama_batch_init(capacity, 0, 1)), capacity_(capacity) {}

Batch::~Batch() { llama_batch_free(batch_); }

void Batch::Reserve(int32_t capacity) {
  llama_batch_free(batch_);
  batch_ = llama_batch_init(capacity, 0, 1);
  capacity_ = capacity;
}

llama_batch Batch::View(int32_t first, int32_t n) const {
  llama_batch view = batch_;
  view.n_tokens = n;
  view.token += first;
  view.pos += first;
  view.n_seq_id += first;
  view.seq_id += first;
  view.logits += first;
  return view;
}

int32_t Batch::Add(llama_token token, llama_pos pos, llama_seq_id seq, bool output) {
  if (batch_.n_tokens >= capacity_) {
    throw Error("batch is full (" + std::to_string(capacity_) + " tokens)");
  }
  const int32_t i = batch_.n_tokens++;
  batch_.token[i] = token;
  batch_.pos[i] = pos;
  batch_.n_seq_id[i] = 1;
  batch_.seq_id[i][0] = seq;
  batch_.logits[i] = output ? 1 : 0;
  return output ? i : -1;
}

}  // namespace stars
