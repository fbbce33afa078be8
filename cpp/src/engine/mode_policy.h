// What a decoding mode decides in the engine loop: how many candidates a round samples and how
// long they may grow, which rows it asks the reward for, and what it accepts. The loop runs the
// rounds (decoding, scoring, sequences, segments) the same way for every mode; a mode is one
// file that implements this (plain_mode.cc, best_of_n_mode.cc, stars_mode.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "algorithm/round_cost.h"
#include "stars/params.h"
#include "stars/result.h"

namespace stars {

struct PromptRun;

// What a round costs, for a mode that prices its width.
struct RoundPricing {
  int32_t other_prompts = 0;  // live requests beside this one, whose sequences decode alongside
  const RoundCostModel* costs = nullptr;
};

// One request's round, decided.
struct Verdict {
  enum class Kind { kContinue, kAccept };
  Kind kind = Kind::kContinue;
  // kAccept: the candidate of this round taken (-1: the best of earlier rounds, kept).
  int32_t chosen_slot = -1;
  // kContinue: this round's candidate to keep as the best so far (-1: none).
  int32_t keep_slot = -1;
  Segment segment;                      // kAccept: attempts, rewards, reward, threshold, fallback
  std::optional<double> result_reward;  // kAccept: the response's reward so far, when known
};

class ModePolicy {
 public:
  virtual ~ModePolicy() = default;

  // Tokens each candidate of the next round may take (`run`'s response so far is accepted).
  virtual int32_t Cap(const PromptRun& run) const = 0;
  // Candidates the next round samples, at most `run.params.candidates`.
  virtual int32_t RoundSize(const PromptRun& run, const RoundPricing& pricing) const = 0;
  // The attempt index of the next round's first candidate: attempt keys follow it.
  virtual int32_t FirstAttempt() const { return 0; }
  // The response is one sampler chain, lent from round to round, and the request may join the
  // loop at any decode step (plain decoding).
  virtual bool OneChain() const { return false; }
  // A round may accept nothing: the next one starts again from the trunk's kept logits.
  virtual bool MayRetry() const { return false; }
  // The reward scores each round's candidates (plain mode scores only the final text).
  virtual bool ScoresCandidates() const = 0;
  // Candidates also end before a token whose distribution's entropy (nats) exceeds this: their
  // rows are then read on the host. None: they end at their cap (CARDS sets one).
  virtual std::optional<double> EntropyEnd() const { return std::nullopt; }
  // The next scoring call leads with r(x, empty), the reward of the empty response.
  virtual bool WantsEmptyRow() const { return false; }
  // Decides the round from its rewards (the empty row's first when asked for; none when the
  // mode scores no candidates). Throws what its rule throws (nothing is accepted then).
  virtual Verdict Decide(const PromptRun& run, std::vector<double> rewards) = 0;
};

// The policy of `params.mode`, for one request.
std::unique_ptr<ModePolicy> MakeModePolicy(const GenerationParams& params);

// Each mode's own file.
std::unique_ptr<ModePolicy> MakePlainMode(const GenerationParams& params);
std::unique_ptr<ModePolicy> MakeBestOfNMode(const GenerationParams& params);
std::unique_ptr<ModePolicy> MakeStarsMode(const GenerationParams& params);
std::unique_ptr<ModePolicy> MakeCardsMode(const GenerationParams& params);

}  // namespace stars
