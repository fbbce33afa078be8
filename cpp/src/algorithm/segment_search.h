// The search for one segment of one prompt: which attempt is accepted, and the best one kept for
// the fallback after max_attempts. Attempts are considered one at a time in order, whatever
// rounds they were sampled in, so the outcome does not depend on the round width.
// Plain numbers only: no llama.h here.
#pragma once

#include <cstdint>
#include <vector>

#include "algorithm/acceptance.h"

namespace stars {

class SegmentSearch {
 public:
  enum class Outcome { kAccepted, kFallback, kContinue };

  struct Decision {
    Outcome outcome;
    // The chosen candidate's slot in this round, or -1 when the fallback picks the best one
    // kept from an earlier round (outcome kFallback only). -1 for kContinue.
    int32_t chosen_slot;
    // The slot of this round that became the best so far, or -1 when the best did not move
    // into this round. The engine keeps that candidate alive for a later fallback.
    int32_t new_best_slot;
    // The threshold the chosen candidate was held to.
    double threshold;
    double reward;
    // Slots of this round that were considered; those after an accepted one are waste.
    int32_t considered;
  };

  explicit SegmentSearch(int32_t max_attempts);

  // Attempts this segment may still take: max_attempts - attempts().
  int32_t attempts_left() const { return max_attempts_ - attempts_; }

  // Considers this round's candidates in slot order: rewards[j], thresholds[j] and the soft
  // rule's draws[j] belong to slot j. Slots after an accepted one are not considered. Requires
  // 1 <= rewards.size() <= attempts_left() and equal sizes.
  Decision Consider(const std::vector<double>& rewards, const std::vector<double>& thresholds,
                    const std::vector<double>& draws, const AcceptanceRule& rule);

  int32_t attempts() const { return attempts_; }
  // The rewards of the candidates considered so far, in order.
  const std::vector<double>& rewards() const { return rewards_; }

 private:
  int32_t max_attempts_;
  int32_t attempts_ = 0;
  std::vector<double> rewards_;
  bool has_best_ = false;
  double best_reward_ = 0.0;
  double best_threshold_ = 0.0;
};

}  // namespace stars
