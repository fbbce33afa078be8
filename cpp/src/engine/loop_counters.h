// The engine loop's counters in one struct, updated at one place per event (a decode call, a
// round, a draw, a decoded trunk, a KV stream copy, a reward call): each event counts for the
// request's Stats and for the engine's running totals together.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/prompt_run.h"
#include "stars/engine.h"

namespace stars {

struct LoopCounters {
  int64_t tokens_sampled = 0;
  int64_t rounds = 0;
  int64_t candidates_sampled = 0;
  int64_t decode_calls = 0;
  int64_t decode_tokens = 0;
  int64_t decode_micro_batches = 0;
  double decode_seconds = 0.0;
  int64_t reward_calls = 0;
  int64_t reward_rows = 0;
  double reward_seconds = 0.0;
  int64_t kv_stream_copies = 0;
  int64_t contexts_created = 0;

  // One llama_decode call of the policy, of `n_tokens` tokens in `micro_batches`.
  void Decode(int32_t n_tokens, double seconds, int32_t micro_batches);
  // `run` starts a round of `width` candidates.
  void Round(PromptRun& run, int32_t width);
  // One token drawn for `run`, in the graph or on the host.
  void Draw(PromptRun& run, bool on_backend);
  // `n_tokens` of `run`'s sequences decoded (its trunk's or a candidate's).
  void Decoded(PromptRun& run, int32_t n_tokens);
  // Whole KV streams copied (forks, keeps and adoptions in the isolated layout).
  void StreamCopies(int64_t n);
  // One reward call of `n_rows` rows, made for `runs`.
  void RewardCall(const std::vector<PromptRun*>& runs, int64_t n_rows, double seconds);
  // Time the policy spent on `runs` (decoding and sampling together).
  static void PolicySeconds(const std::vector<PromptRun*>& runs, double seconds);

  // Copies the totals into the engine's published metrics.
  void Publish(EngineMetrics* metrics) const;
};

}  // namespace stars
