// What a generation returns, per prompt.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace stars {

enum class FinishReason { kStop, kLength, kCancelled };
const char* FinishReasonName(FinishReason reason);

// A token's log-probability under the policy: the log-softmax of its raw logits, before
// temperature and truncation (as llama.cpp's server reports by default).
struct TokenLogprob {
  int32_t token = 0;
  std::string text;  // the token's bytes (a piece of a UTF-8 character, possibly)
  double logprob = 0.0;
  std::vector<TokenLogprob> top;  // the top_logprobs likeliest tokens, likeliest first
};

struct Segment {
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<TokenLogprob> logprobs;  // one per token, when logprobs was asked for
  int32_t attempts = 0;
  std::vector<double> rewards;   // of the candidates considered, in order
  std::optional<double> reward;  // the chosen candidate's (not in plain mode)
  // The tau the chosen candidate was held to (stars only; none for a warm-up segment, which
  // takes the best of the attempts that calibrate threshold="auto").
  std::optional<double> threshold;
  bool fallback = false;  // max_attempts reached: the best attempt was taken
};

// Counts are this request's own. seconds_policy and seconds_reward are the wall time of the
// decode steps and reward calls the request took part in (requests batched together share
// them); seconds_total runs from admission to the end.
struct Stats {
  int64_t policy_tokens_sampled = 0;
  int64_t tokens_accepted = 0;
  int64_t tokens_wasted = 0;
  int64_t prompt_tokens = 0;
  int64_t policy_tokens_decoded = 0;
  int64_t reward_calls = 0;
  int64_t reward_rows = 0;
  int64_t reward_tokens_decoded = 0;
  int64_t reward_rows_truncated = 0;
  int64_t rounds = 0;             // rounds in which this prompt sampled candidates
  double mean_round_width = 0.0;  // candidates sampled per round
  // Of policy_tokens_sampled, those drawn inside llama.cpp's graph (sampling "backend").
  int64_t backend_tokens_sampled = 0;
  // Why this request sampled on the host although the engine samples on the backend ("" when
  // it did not, or when the engine samples on the host).
  std::string sampling_fallback;
  double seconds_policy = 0.0;
  double seconds_reward = 0.0;
  double seconds_total = 0.0;
};

struct Result {
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<TokenLogprob> logprobs;  // one per token, when logprobs was asked for
  FinishReason finish_reason = FinishReason::kLength;
  std::optional<double> reward;  // of the final text, when the engine has a reward
  std::vector<Segment> segments;
  Stats stats;
};

}  // namespace stars
