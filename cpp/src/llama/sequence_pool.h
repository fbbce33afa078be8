// Sequence ids of one context, and every llama_memory_* call: fork, rewind, adopt, release.
#pragma once

#include <cstdint>
#include <vector>

#include "llama.h"

namespace stars {

class Context;

class SequencePool {
 public:
  // Hands out the ids [0, context.n_seq_max()). Clears the context's memory.
  explicit SequencePool(Context& context);

  // Takes a free, empty sequence id. Throws Error when none is free.
  llama_seq_id Acquire();

  // A new sequence sharing every cell of `source` (llama_memory_seq_cp: in a unified cache the
  // cells are shared, not copied).
  llama_seq_id Fork(llama_seq_id source);

  // Drops the cells of `seq` at positions >= `pos`. Throws Error when llama.cpp cannot remove
  // a partial sequence (recurrent memory).
  void Rewind(llama_seq_id seq, llama_pos pos);

  // Makes `chosen` (a fork of `trunk`) the new trunk: releases `trunk` and returns `chosen`.
  llama_seq_id Adopt(llama_seq_id trunk, llama_seq_id chosen);

  // Removes every cell of `seq` and returns the id to the pool.
  void Release(llama_seq_id seq);

  // Removes every sequence and frees every id.
  void Clear();

  int32_t n_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t n_total() const { return n_total_; }

 private:
  Context& context_;
  int32_t n_total_;
  std::vector<llama_seq_id> free_;
  std::vector<bool> in_use_;
};

}  // namespace stars
