// Best-of-N: one round of N whole responses, the one with the highest reward taken.
#include "engine/mode_policy.h"
#include "engine/prompt_run.h"

namespace stars {
namespace {

class BestOfNMode : public ModePolicy {
 public:
  int32_t Cap(const PromptRun& run) const override {
    return run.params.max_tokens - run.response_length();
  }
  int32_t RoundSize(const PromptRun& run, const RoundPricing&) const override {
    return run.params.candidates;
  }
  bool ScoresCandidates() const override { return true; }
  Verdict Decide(const PromptRun& run, std::vector<double> rewards) override {
    size_t best = 0;
    for (size_t j = 1; j < rewards.size(); ++j) {
      if (rewards[j] > rewards[best]) best = j;
    }
    Verdict verdict;
    verdict.kind = Verdict::Kind::kAccept;
    verdict.chosen_slot = static_cast<int32_t>(best);
    verdict.segment.attempts = static_cast<int32_t>(run.candidates.size());
    verdict.segment.reward = rewards[best];
    verdict.result_reward = rewards[best];
    verdict.segment.rewards = std::move(rewards);
    return verdict;
  }
};

}  // namespace

std::unique_ptr<ModePolicy> MakeBestOfNMode(const GenerationParams&) {
  return std::make_unique<BestOfNMode>();
}

}  // namespace stars
