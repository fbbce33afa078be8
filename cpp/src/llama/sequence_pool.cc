#include "llama/sequence_pool.h"

#include <algorithm>
#include <string>
#include <utility>

#include "llama/context.h"
#include "stars/errors.h"

namespace stars {

SequencePool::SequencePool(Context& context)
    : context_(context),
      n_total_(context.n_seq_max()),
      isolated_(context.layout() == KvLayout::kIsolated) {
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
  for (llama_seq_id seq = 0; seq < n_total_; ++seq) {
    if (!in_use_[seq]) return Take(seq);
  }
  throw Error("no free sequence id (all " + std::to_string(n_total_) + " in use)");
}

llama_seq_id SequencePool::AcquireLasting() {
  for (llama_seq_id seq = n_total_ - 1; seq >= 0; --seq) {
    if (!in_use_[seq]) return Take(seq);
  }
  throw Error("no free sequence id (all " + std::to_string(n_total_) + " in use)");
}

llama_seq_id SequencePool::Take(llama_seq_id seq) {
  in_use_[seq] = true;
  --n_free_;
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
  if (isolated_) {
    CopyStream(source, seq);
  } else {
    llama_memory_seq_cp(context_.memory(), source, seq, -1, -1);
    shared_[seq] = end_[seq] = end_[source];
  }
  return seq;
}

void SequencePool::CopyStream(llama_seq_id source, llama_seq_id target) {
  // Across streams llama.cpp copies the whole stream at the next decode, and resets the
  // target's cells now.
  llama_memory_seq_cp(context_.memory(), source, target, -1, -1);
  cells_in_use_ += end_[source] - (end_[target] - shared_[target]);
  shared_[target] = 0;
  end_[target] = end_[source];
}

llama_seq_id SequencePool::Keep(llama_seq_id seq) {
  CheckInUse(seq, "keep");
  if (!isolated_) return seq;
  const llama_seq_id kept = AcquireLasting();
  CopyStream(seq, kept);
  Release(seq);
  return kept;
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
  if (isolated_) {
    CheckInUse(trunk, "adopt");
    CopyStream(chosen, trunk);
    DetachSampler(trunk);
    if (samplers_[chosen]) {
      Sampler clone = samplers_[chosen]->Clone();
      AttachSampler(trunk, &clone);  // refused: the trunk samples on the host
    }
    Release(chosen);
    return trunk;
  }
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
  ++n_free_;
}

void SequencePool::Clear() {
  DetachSamplers();
  samplers_.clear();
  samplers_.resize(static_cast<size_t>(n_total_));
  llama_memory_clear(context_.memory(), false);
  n_free_ = n_total_;
  in_use_.assign(n_total_, false);
  shared_.assign(n_total_, 0);
  end_.assign(n_total_, 0);
  cells_in_use_ = 0;
}

}  // namespace stars
