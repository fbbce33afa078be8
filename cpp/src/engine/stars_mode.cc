// STARS: segments of K tokens, each accepted when its reward clears a threshold that rises as
// the response grows, or sampled again, up to M attempts (then the best is taken).
#include <algorithm>
#include <optional>

#include "algorithm/acceptance.h"
#include "algorithm/attempt_key.h"
#include "algorithm/calibration.h"
#include "algorithm/round_width.h"
#include "algorithm/segment_search.h"
#include "engine/mode_policy.h"
#include "engine/prompt_run.h"

namespace stars {
namespace {

class StarsMode : public ModePolicy {
 public:
  explicit StarsMode(const GenerationParams& params)
      : search_(params.max_attempts), calibration_(params) {}

  int32_t Cap(const PromptRun& run) const override {
    return std::min(run.params.segment_tokens, run.params.max_tokens - run.response_length());
  }

  int32_t RoundSize(const PromptRun& run, const RoundPricing& pricing) const override {
    const GenerationParams& params = run.params;
    const int32_t left = search_.attempts_left();
    const int32_t widest = std::min(params.candidates, left);
    if (params.width == Width::kFixed) return widest;
    // A warm-up accepts nothing: exactly the attempts it still needs, in as few rounds as
    // allowed.
    if (calibration_.warming_up()) return std::min(widest, calibration_.warmup_left());
    // The acceptance rate: the request's own so far, else the rate an auto threshold aims for,
    // else even odds (the first round at a float threshold).
    const int32_t length = run.response_length() + Cap(run);
    const std::optional<double> target = calibration_.TargetAcceptance(length);
    // No round goes wide just to measure a wider step: the cost model's line learns its slope
    // from the sizes the rounds take anyway (prompts joining and ending).
    const double p = attempts_considered_ > 0 || !target
                         ? EstimateAcceptance(segments_accepted_, attempts_considered_)
                         : *target;
    // A candidate's first token comes from the trunk's logits and its last is decoded only if
    // it is accepted: cap - 1 batched steps. The other requests' sequences decode alongside.
    const int32_t steps = Cap(run) - 1;
    return ChooseRoundWidth(widest, left, p, [&](int32_t width) {
      return pricing.costs->RoundSeconds(pricing.other_prompts, width, steps);
    });
  }

  int32_t FirstAttempt() const override { return search_.attempts(); }
  bool MayRetry() const override { return true; }
  bool ScoresCandidates() const override { return true; }
  bool WantsEmptyRow() const override { return calibration_.needs_empty_reward(); }

  Verdict Decide(const PromptRun& run, std::vector<double> rewards) override {
    if (calibration_.needs_empty_reward()) {
      calibration_.SetEmptyReward(rewards.front());
      rewards.erase(rewards.begin());
    }
    std::vector<int32_t> lengths;
    std::vector<double> draws;
    for (const Candidate& candidate : run.candidates) {
      lengths.push_back(run.response_length() + static_cast<int32_t>(candidate.tokens.size()));
      draws.push_back(AcceptanceDraw(candidate.attempt_key));
    }
    const SegmentSearch::Decision decision =
        search_.Consider(rewards, lengths, draws, calibration_);
    // Candidates after the chosen one were sampled and scored for nothing: waste, and nothing
    // else (they must not move the width estimate, or outputs would depend on the width). A
    // warm-up's attempts could not be accepted: they say nothing of the acceptance rate.
    if (decision.outcome != SegmentSearch::Outcome::kWarmup) {
      attempts_considered_ += decision.considered;
    }
    if (decision.outcome == SegmentSearch::Outcome::kAccepted) ++segments_accepted_;
    Verdict verdict;
    if (decision.outcome == SegmentSearch::Outcome::kContinue) {
      verdict.keep_slot = decision.new_best_slot;
      return verdict;
    }
    verdict.kind = Verdict::Kind::kAccept;
    verdict.chosen_slot = decision.chosen_slot;
    verdict.segment.attempts = search_.attempts();
    verdict.segment.rewards = search_.rewards();
    verdict.segment.threshold = decision.threshold;
    verdict.segment.reward = decision.reward;
    verdict.segment.fallback = decision.outcome == SegmentSearch::Outcome::kFallback;
    verdict.result_reward = decision.reward;
    search_ = SegmentSearch(run.params.max_attempts);  // the next segment's
    return verdict;
  }

 private:
  SegmentSearch search_;
  Calibration calibration_;
  // The prompt's own acceptance record, for the width of its next round.
  int64_t attempts_considered_ = 0;
  int64_t segments_accepted_ = 0;
};

}  // namespace

std::unique_ptr<ModePolicy> MakeStarsMode(const GenerationParams& params) {
  return std::make_unique<StarsMode>(params);
}

}  // namespace stars
