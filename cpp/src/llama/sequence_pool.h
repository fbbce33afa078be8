// Sequence ids of one context, every llama_memory_* call (fork, rewind, adopt, release), and the
// KV cells they hold. The policy's trunks and candidates and a KV-cached reward's trunks and
// forks are both this shape: a trunk, and forks that start from its cells.
//
// Shared layout: forks share their trunk's cells. Isolated layout: each sequence id is its own
// KV stream; a fork or an adoption copies the stream. There llama.cpp decodes the sequences of a
// batch in one micro-batch only when their ids are consecutive, so short-lived sequences (forks)
// take the lowest free ids and lasting ones (trunks, kept candidates) the highest.
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

  // Takes the lowest free, empty sequence id (for a fork or a row). Throws Error when none is
  // free.
  llama_seq_id Acquire();
  // Takes the highest free, empty sequence id (for a trunk). Throws Error when none is free.
  llama_seq_id AcquireLasting();

  // A new sequence (lowest free id) holding every cell of `source`: shared with it, or copied
  // into its own stream. Throws ParameterError when `source` is not in use.
  llama_seq_id Fork(llama_seq_id source);

  // `seq`'s cells under a lasting id (AcquireLasting), `seq` released; its backend sampler is
  // dropped. Shared layout: `seq` itself, untouched.
  llama_seq_id Keep(llama_seq_id seq);

  // Drops the cells of `seq` at positions >= `pos` (>= 0). Throws ParameterError for an id not
  // in use or a negative position (llama.cpp would read -1 as every sequence or position), and
  // Error when llama.cpp cannot remove a partial sequence (recurrent memory).
  void Rewind(llama_seq_id seq, llama_pos pos);

  // Makes `chosen` (a fork of `trunk`) the new trunk and returns the trunk's id from now on.
  // Shared: releases `trunk` and returns `chosen`. Isolated: copies `chosen` into `trunk`'s
  // stream (a backend sampler moves along as a clone), releases `chosen` and returns `trunk`,
  // so that trunks keep their lasting ids.
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

  int32_t n_free() const { return n_free_; }
  int32_t n_total() const { return n_total_; }
  int32_t n_in_use() const { return n_total_ - n_free(); }
  // KV cells in use: each sequence's positions past those it shares with the trunk it forked
  // (isolated: every position of every sequence).
  int64_t n_cells_in_use() const { return cells_in_use_; }
  bool isolated() const { return isolated_; }

 private:
  Context& context_;
  int32_t n_total_;
  bool isolated_;
  llama_seq_id Take(llama_seq_id seq);
  // Copies every cell of `source` into `target`'s stream, which loses its own (isolated only).
  void CopyStream(llama_seq_id source, llama_seq_id target);
  // Throws ParameterError unless `seq` is an id this pool handed out and has not taken back:
  // llama.cpp asserts (aborting the process) or acts on every sequence for other values.
  void CheckInUse(llama_seq_id seq, const char* what) const;
  void DetachSamplers();

  int32_t n_free_ = 0;
  std::vector<bool> in_use_;
  std::vector<std::optional<Sampler>> samplers_;  // backend samplers, by sequence
  // Per sequence: positions shared with its source at the fork, and positions held.
  std::vector<llama_pos> shared_;
  std::vector<llama_pos> end_;
  int64_t cells_in_use_ = 0;
};

}  // namespace stars
