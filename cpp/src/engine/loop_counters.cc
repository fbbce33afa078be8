#include "engine/loop_counters.h"

namespace stars {

void LoopCounters::Decode(int32_t n_tokens, double seconds, int32_t micro_batches) {
  ++decode_calls;
  decode_tokens += n_tokens;
  decode_micro_batches += micro_batches;
  decode_seconds += seconds;
}

void LoopCounters::Round(PromptRun& run, int32_t width) {
  ++run.result.stats.rounds;
  run.candidates_sampled += width;
  ++rounds;
  candidates_sampled += width;
}

void LoopCounters::Draw(PromptRun& run, bool on_backend) {
  ++run.result.stats.policy_tokens_sampled;
  ++tokens_sampled;
  if (on_backend) ++run.result.stats.backend_tokens_sampled;
}

void LoopCounters::Decoded(PromptRun& run, int32_t n_tokens) {
  run.result.stats.policy_tokens_decoded += n_tokens;
}

void LoopCounters::StreamCopies(int64_t n) { kv_stream_copies += n; }

void LoopCounters::RewardCall(const std::vector<PromptRun*>& runs, int64_t n_rows, double seconds) {
  ++reward_calls;
  reward_rows += n_rows;
  reward_seconds += seconds;
  for (PromptRun* run : runs) {
    run->result.stats.seconds_reward += seconds;
    ++run->result.stats.reward_calls;
  }
}

void LoopCounters::PolicySeconds(const std::vector<PromptRun*>& runs, double seconds) {
  for (PromptRun* run : runs) run->result.stats.seconds_policy += seconds;
}

void LoopCounters::Publish(EngineMetrics* metrics) const {
  metrics->tokens_sampled = tokens_sampled;
  metrics->rounds = rounds;
  metrics->candidates_sampled = candidates_sampled;
  metrics->decode_calls = decode_calls;
  metrics->decode_tokens = decode_tokens;
  metrics->decode_micro_batches = decode_micro_batches;
  metrics->decode_seconds = decode_seconds;
  metrics->reward_calls = reward_calls;
  metrics->reward_rows = reward_rows;
  metrics->reward_seconds = reward_seconds;
  metrics->kv_stream_copies = kv_stream_copies;
  metrics->contexts_created = contexts_created;
}

}  // namespace stars
