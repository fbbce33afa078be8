// Scoring a round: the rows of every request in one reward call, checked (one finite value per
// row). When that call throws, each request is scored alone, so that only the requests whose
// rows raise fail, each with the error of its own call.
#pragma once

#include <vector>

#include "algorithm/round_cost.h"
#include "engine/loop_counters.h"
#include "engine/prompt_run.h"
#include "stars/reward.h"

namespace stars {

// The row of `run`'s response so far followed by `candidate` (null: the response alone).
RewardRow MakeRow(const PromptRun& run, const Candidate* candidate);

class RoundScorer {
 public:
  RoundScorer(Reward* reward, RoundCostModel* costs, LoopCounters* counters)
      : reward_(reward), costs_(costs), counters_(counters) {}

  // Each run's scores, in the order of its rows. A run whose rows could not be scored has
  // failed (FailRun) and gets an empty vector.
  std::vector<std::vector<double>> Score(const std::vector<PromptRun*>& runs,
                                         const std::vector<std::vector<RewardRow>>& rows);

 private:
  // One reward call for `runs`, counted and checked; throws what the reward throws and
  // RewardError for a wrong count or a non-finite value.
  std::vector<double> Call(const std::vector<PromptRun*>& runs, const std::vector<RewardRow>& rows);

  Reward* reward_;
  RoundCostModel* costs_;
  LoopCounters* counters_;
};

}  // namespace stars
