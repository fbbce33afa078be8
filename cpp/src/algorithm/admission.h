// Admission's capacity math on plain numbers: what one request holds at its peak (sequence ids,
// KV cells), and how large the policy context is made for the requests that wait.
#pragma once

#include <cstdint>

#include "stars/params.h"

namespace stars {

// Sequence ids one request holds at once in `mode`.
int32_t SequencesPerPrompt(Mode mode, int32_t candidates);

// KV cells one request of `n_prompt` tokens may hold at once: in all of its sequences together
// (shared layout), or in its longest sequence (isolated: each sequence has a stream of its own).
int64_t CellsPerPrompt(const GenerationParams& params, int64_t n_prompt, KvLayout layout);

struct ContextSize {
  int32_t n_seq = 0;    // sequence ids
  int32_t n_cells = 0;  // isolated: cells per stream; shared: cells in all
};

struct ContextDemand {
  int32_t wanted_seqs = 0;    // the ids the waiting requests reserve together
  int64_t longest_cells = 0;  // the most cells one waiting request reserves (isolated)
  ContextSize have;           // the context now ({0, 0}: none yet)
  int32_t n_seq_max = 0;      // EngineOptions::n_seq_max (0: sized to the requests)
  int32_t n_ctx = 0;          // EngineOptions::n_ctx
  KvLayout layout = KvLayout::kIsolated;
  int32_t max_sequences = 0;  // llama.cpp's limit
};

// The fewest sequence ids the policy context is made with.
inline constexpr int32_t kMinSequences = 8;

// The context for `demand`, never smaller than the one it has. Ids grow by eights in the
// isolated layout (each id is a whole stream of cells) and by doubling in the shared one; an
// isolated stream holds the longest request's cells, from 256 by doubling, at most n_ctx.
ContextSize SizeContext(const ContextDemand& demand);

}  // namespace stars
