#include "algorithm/admission.h"

#include <algorithm>

namespace stars {

int32_t SequencesPerPrompt(Mode mode, int32_t candidates) {
  switch (mode) {
    case Mode::kPlain:
      return 2;
    case Mode::kBestOfN:
      return candidates + 1;
    case Mode::kStars:
    case Mode::kCards:
      // The trunk, this round's candidates and the best of earlier rounds for the fallback.
      return candidates + 2;
  }
  return 0;
}

int64_t CellsPerPrompt(const GenerationParams& params, int64_t n_prompt, KvLayout layout) {
  const int64_t t = params.max_tokens;
  if (layout == KvLayout::kIsolated) return n_prompt + t;
  switch (params.mode) {
    case Mode::kPlain:
      return n_prompt + t;
    case Mode::kBestOfN:
      return n_prompt + static_cast<int64_t>(params.candidates) * t;
    case Mode::kStars:
    case Mode::kCards:
      // No segment is longer than the response may be.
      return n_prompt + t +
             static_cast<int64_t>(params.candidates + 1) *
                 std::min<int64_t>(params.segment_tokens, t);
  }
  return 0;
}

ContextSize SizeContext(const ContextDemand& demand) {
  const bool isolated = demand.layout == KvLayout::kIsolated;
  int32_t n_seq = std::max(kMinSequences, demand.n_seq_max);
  if (isolated) {
    n_seq = std::max(n_seq, (demand.wanted_seqs + 7) / 8 * 8);
  } else {
    while (n_seq < demand.wanted_seqs) n_seq *= 2;
  }
  ContextSize size;
  size.n_seq = std::min(std::max(n_seq, demand.have.n_seq), demand.max_sequences);
  size.n_cells = demand.n_ctx;
  if (isolated) {
    // A fork copies a whole stream: each holds the longest request's prompt and response only.
    int64_t cells = 256;
    while (cells < demand.longest_cells) cells *= 2;
    size.n_cells = static_cast<int32_t>(
        std::max<int64_t>(std::min<int64_t>(cells, demand.n_ctx), demand.have.n_cells));
  }
  return size;
}

}  // namespace stars
