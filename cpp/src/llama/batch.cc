#include "llama/batch.h"

#include <string>

#include "stars/errors.h"

namespace stars {

Batch::Batch(int32_t capacity) : batch_(llama_batch_init(capacity, 0, 1)), capacity_(capacity) {}

Batch::~Batch() { llama_batch_free(batch_); }

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
