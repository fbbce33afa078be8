// Sequence ids of one context, every llama_memory_* call (fork, rewind, adopt, release), and the
// KV cells they hold. The policy's trunks and candidates and a KV-cached reward's trunks and
// forks are both this shape: a trunk, and forks that share its cells up to their fork point.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "llama.h"
#include "llama/sampler.h"

namespace stars {

class Context;

class SequencePool {
 public:
  // Hands out the ids [0, context.n_seq_max()). Clears the context's memory.
  explicit SequencePool(Context& context);
  // Detaches every backend sampler: the context must not keep a pointer to a freed chain.
  ~SequencePool();
  SequencePool(const SequencePool&) = delete;
  SequencePool& operator=(const SequencePool&) = delete;

  // Takes a free, empty sequence id. Throws Error when none is free.
  llama_seq_id Acquire();

  // A new sequence sharing every cell of `source` (llama_memory_seq_cp: in a unified cache the
  // cells are shared, not copied). Throws ParameterError when `source` is not in use.
  llama_seq_id Fork(llama_seq_id source);

  // Drops the cells of `seq` at positions >= `pos` (>= 0). Throws ParameterError for an id not
  // in use or a negative position (llama.cpp would read -1 as every sequence or position), and
  // Error when llama.cpp cannot remove a partial sequence (recurrent memory).
  void Rewind(llama_seq_id seq, llama_pos pos);

  // Makes `chosen` (a fork of `trunk`) the new trunk: releases `trunk` and returns `chosen`.
  llama_seq_id Adopt(llama_seq_id trunk, llama_seq_id chosen);

  // `seq` now holds positions [0, end) (BatchRunner reports what it decoded).
  void Extend(llama_seq_id seq, llama_pos end);

  // Removes every cell of `seq` (and its backend sampler) and returns the id to the pool.
  void Release(llama_seq_id seq);

  // Hands `sampler` to sequence `seq` for backend sampling (Context::AttachSampler); the pool
  // keeps it until the sequence is released or DetachSampler. Returns false when llama.cpp
  // would not take it: the sampler is handed back in `*sampler`, untouched.
  bool AttachSampler(llama_seq_id seq, Sampler* sampler);
  // The sampler attached to `seq`, or null.
  const Sampler* AttachedSampler(llama_seq_id seq) const;
  // Detaches and frees the sampler of `seq`, if any. A chain llama.cpp has taken once cannot be
  // attached again, so nothing is handed back.
  void DetachSampler(llama_seq_id seq);

  // Removes every sequence and frees every id.
  void Clear();

  int32_t n_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t n_total() const { return n_total_; }
  int32_t n_in_use() const { return n_total_ - n_free(); }
  // KV cells in use: each sequence's positions past those it shares with the trunk it forked.
  int64_t n_cells_in_use() const { return cells_in_use_; }

 private:
  Context& context_;
  int32_t n_total_;
  // Throws ParameterError unless `seq` is an id this pool handed out and has not taken back:
  // llama.cpp asserts (aborting the process) or acts on every sequence for other values.
  void CheckInUse(llama_seq_id seq, const char* what) const;
  void DetachSamplers();

  std::vector<llama_seq_id> free_;
  std::vector<bool> in_use_;
  std::vector<std::optional<Sampler>> samplers_;  // backend samplers, by sequence
  // Per sequence: positions shared with its source at the fork, and positions held.
  std::vector<llama_pos> shared_;
  std::vector<llama_pos> end_;
  int64_t cells_in_use_ = 0;
};

}  // namespace stars
