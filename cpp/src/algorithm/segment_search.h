// Round bookkeeping for one segment of one prompt (DESIGN section 1): how many candidates the
// next round samples, which candidate is accepted, and the best one kept for the fallback.
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
  };

  SegmentSearch(int32_t candidates, int32_t max_attempts);

  // min(N, M - attempts): the size of the next round of this segment.
  int32_t NextRoundSize() const;

  // Considers this round's candidates in slot order. rewards[j] and thresholds[j] belong to
  // slot j; slots after an accepted one are not considered.
  Decision Consider(const std::vector<double>& rewards, const std::vector<double>& thresholds,
                    AcceptanceRule& rule);

  int32_t attempts() const { return attempts_; }
  // The rewards of the candidates considered so far, in order.
  const std::vector<double>& rewards() const { return rewards_; }

 private:
  int32_t candidates_;
  int32_t max_attempts_;
  int32_t attempts_ = 0;
  std::vector<double> rewards_;
  bool has_best_ = false;
  double best_reward_ = 0.0;
  double best_threshold_ = 0.0;
};

}  // namespace stars
