// Plain decoding: one candidate per round, always accepted; the reward (if any) scores the
// final text once.
#include <algorithm>

#include "engine/mode_policy.h"
#include "engine/prompt_run.h"

namespace stars {
namespace {

class PlainMode : public ModePolicy {
 public:
  int32_t Cap(const PromptRun& run) const override {
    return std::min(run.params.segment_tokens, run.params.max_tokens - run.response_length());
  }
  int32_t RoundSize(const PromptRun&, const RoundPricing&) const override { return 1; }
  bool OneChain() const override { return true; }
  bool ScoresCandidates() const override { return false; }
  Verdict Decide(const PromptRun&, std::vector<double>) override {
    Verdict verdict;
    verdict.kind = Verdict::Kind::kAccept;
    verdict.chosen_slot = 0;
    verdict.segment.attempts = 1;
    return verdict;
  }
};

}  // namespace

std::unique_ptr<ModePolicy> MakePlainMode(const GenerationParams&) {
  return std::make_unique<PlainMode>();
}

}  // namespace stars
