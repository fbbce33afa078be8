#include "llama/sequence_pool.h"

#include <algorithm>
#include <string>
#include <utility>

#include "llama/context.h"
#include "stars/errors.h"

namespace stars {

SequencePool::SequencePool(Context& context) : context_(context), n_total_(context.n_seq_max()) {
  Clear();
}

SequencePool::~SequencePool() { DetachSamplers(); }

void SequencePool::DetachSamplers() {
  for (llama_seq_id seq = 0; seq < static_cast<llama_seq_id>(samplers_.size()); ++seq) {
    DetachSampler(seq);
  }
}

bool SequencePool::AttachSampler(llama_seq_id seq, Sampler* sampler) {
  CheckInUse(seq, "attach a sampler");
  DetachSampler(seq);
  if (!context_.AttachSampler(seq, sampler->get())) return false;
  samplers_[seq].emplace(std::move(*sampler));
  return true;
}

const Sampler* SequencePool::AttachedSampler(llama_seq_id seq) const {
  return seq >= 0 && seq < n_total_ && samplers_[seq] ? &*samplers_[seq] : nullptr;
}

void SequencePool::DetachSampler(llama_seq_id seq) {
  if (seq < 0 || seq >= n_total_ || !samplers_[seq]) return;
  context_.DetachSampler(seq);
  samplers_[seq].reset();
}

llama_seq_id SequencePool::Acquire() {
  if (free_.empty()) {
    throw Error("no free sequence id (all " + std::to_string(n_total_) + " in use)");
  }
  const llama_seq_id seq = free_.back();
  free_.pop_back();
  in_use_[seq] = true;
  shared_[seq] = end_[seq] = 0;
  return seq;
}

void SequencePool::CheckInUse(llama_seq_id seq, const char* what) const {
  if (seq < 0 || seq >= n_total_ || !in_use_[seq]) {
    throw ParameterError(std::string(what) + ": sequence " + std::to_string(seq) +
                         " is not in use (ids are in [0, " + std::to_string(n_total_) + "))");
  }
}

llama_seq_id SequencePool::Fork(llama_seq_id source) {
  CheckInUse(source, "fork");
  const llama_seq_id seq = Acquire();
  llama_memory_seq_cp(context_.memory(), source, seq, -1, -1);
  shared_[seq] = end_[seq] = end_[source];
  return seq;
}

void SequencePool::Rewind(llama_seq_id seq, llama_pos pos) {
  CheckInUse(seq, "rewind");
  if (pos < 0) {
    throw ParameterError("rewind: position must be >= 0, got " + std::to_string(pos));
  }
  if (!llama_memory_seq_rm(context_.memory(), seq, pos, -1)) {
    throw Error("llama.cpp cannot rewind sequence " + std::to_string(seq) + " to position " +
                std::to_string(pos) + " (this model's memory cannot drop a partial sequence)");
  }
  if (pos < end_[seq]) {
    const llama_pos shared = std::min(shared_[seq], pos);
    cells_in_use_ -= (end_[seq] - shared_[seq]) - (pos - shared);
    shared_[seq] = shared;
    end_[seq] = pos;
  }
}

void SequencePool::Extend(llama_seq_id seq, llama_pos end) {
  if (end > end_[seq]) {
    cells_in_use_ += end - end_[seq];
    end_[seq] = end;
  }
}

llama_seq_id SequencePool::Adopt(llama_seq_id trunk, llama_seq_id chosen) {
  CheckInUse(chosen, "adopt");
  Release(trunk);
  // The cells `chosen` shared with the trunk are its own now.
  cells_in_use_ += shared_[chosen];
  shared_[chosen] = 0;
  return chosen;
}

void SequencePool::Release(llama_seq_id seq) {
  CheckInUse(seq, "release");
  DetachSampler(seq);
  // Removing a whole sequence never fails (llama.h).
  llama_memory_seq_rm(context_.memory(), seq, -1, -1);
  cells_in_use_ -= end_[seq] - shared_[seq];
  shared_[seq] = end_[seq] = 0;
  in_use_[seq] = false;
  free_.push_back(seq);
}

void SequencePool::Clear() {
  DetachSamplers();
  samplers_.clear();
  samplers_.resize(static_cast<size_t>(n_total_));
  llama_memory_clear(context_.memory(), false);
  free_.clear();
  in_use_.assign(n_total_, false);
  shared_.assign(n_total_, 0);
  end_.assign(n_total_, 0);
  cells_in_use_ = 0;
  // Highest first, so that Acquire hands out 0, 1, 2, ... as examples/batched does.
  for (int32_t seq = n_total_ - 1; seq >= 0; --seq) free_.push_back(seq);
}

}  // namespace stars
