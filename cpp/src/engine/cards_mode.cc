// CARDS: segments that end where the policy grows unsure, at the first token whose next-token
// distribution has more entropy than `entropy_threshold` (or at segment_tokens), each accepted
// or sampled again by reward as in STARS: the same threshold schedule, rule and fallback.
#include <optional>

#include "engine/mode_policy.h"
#include "engine/prompt_run.h"

namespace stars {
namespace {

class CardsMode : public ModePolicy {
 public:
  explicit CardsMode(const GenerationParams& params)
      : stars_(MakeStarsMode(params)), entropy_threshold_(params.entropy_threshold) {}

  std::optional<double> EntropyEnd() const override { return entropy_threshold_; }

  int32_t Cap(const PromptRun& run) const override { return stars_->Cap(run); }
  int32_t RoundSize(const PromptRun& run, const RoundPricing& pricing) const override {
    return stars_->RoundSize(run, pricing);
  }
  int32_t FirstAttempt() const override { return stars_->FirstAttempt(); }
  bool MayRetry() const override { return true; }
  bool ScoresCandidates() const override { return true; }
  bool WantsEmptyRow() const override { return stars_->WantsEmptyRow(); }
  Verdict Decide(const PromptRun& run, std::vector<double> rewards) override {
    return stars_->Decide(run, std::move(rewards));
  }

 private:
  std::unique_ptr<ModePolicy> stars_;  // the decisions
  double entropy_threshold_;
};

}  // namespace

std::unique_ptr<ModePolicy> MakeCardsMode(const GenerationParams& params) {
  return std::make_unique<CardsMode>(params);
}

}  // namespace stars
