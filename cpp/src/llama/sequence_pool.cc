#include "llama/sequence_pool.h"

#include <string>

#include "llama/context.h"
#include "stars/errors.h"

namespace stars {

SequencePool::SequencePool(Context& context) : context_(context), n_total_(context.n_seq_max()) {
  Clear();
}

llama_seq_id SequencePool::Acquire() {
  if (free_.empty()) {
    throw Error("no free sequence id (all " + std::to_string(n_total_) + " in use)");
  }
  const llama_seq_id seq = free_.back();
  free_.pop_back();
  in_use_[seq] = true;
  return seq;
}

llama_seq_id SequencePool::Fork(llama_seq_id source) {
  const llama_seq_id seq = Acquire();
  llama_memory_seq_cp(context_.memory(), source, seq, -1, -1);
  return seq;
}

void SequencePool::Rewind(llama_seq_id seq, llama_pos pos) {
  if (!llama_memory_seq_rm(context_.memory(), seq, pos, -1)) {
    throw Error("llama.cpp cannot rewind sequence " + std::to_string(seq) + " to position " +
                std::to_string(pos) + " (this model's memory cannot drop a partial sequence)");
  }
}

llama_seq_id SequencePool::Adopt(llama_seq_id trunk, llama_seq_id chosen) {
  Release(trunk);
  return chosen;
}

void SequencePool::Release(llama_seq_id seq) {
  if (seq < 0 || seq >= n_total_ || !in_use_[seq]) {
    throw Error("sequence " + std::to_string(seq) + " is not in use");
  }
  // Removing a whole sequence never fails (llama.h).
  llama_memory_seq_rm(context_.memory(), seq, -1, -1);
  in_use_[seq] = false;
  free_.push_back(seq);
}

void SequencePool::Clear() {
  llama_memory_clear(context_.memory(), false);
  free_.clear();
  in_use_.assign(n_total_, false);
  // Highest first, so that Acquire hands out 0, 1, 2, ... as examples/batched does.
  for (int32_t seq = n_total_ - 1; seq >= 0; --seq) free_.push_back(seq);
}

}  // namespace stars
