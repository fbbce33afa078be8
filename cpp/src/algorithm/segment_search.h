// The search for one segment of one prompt: which attempt is accepted, and the best one kept for
// the fallback after max_attempts. Attempts are considered one at a time in order, whatever
// rounds they were sampled in, so the outcome does not depend on the round width.
// Plain numbers only: no llama.h here.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "algorithm/calibration.h"

namespace stars {

class SegmentSearch {
 public:
  // kWarmup: the prompt's calibration has just seen its warm-up attempts, and the best of this
  // segment's attempts is taken (Calibration::warmup_attempts).
  enum class Outcome { kAccepted, kFallback, kWarmup, kContinue };

  struct Decision {
    Outcome outcome;
    // The chosen candidate's slot in this round, or -1 when the best one kept from an earlier
    // round is taken (kFallback, kWarmup). -1 for kContinue.
    int32_t chosen_slot;
    // The slot of this round that became the best so far, or -1 when the best did not move
    // into this round. The engine keeps that candidate alive for a later fallback.
    int32_t new_best_slot;
    // The threshold the chosen candidate was held to (none during a warm-up).
    std::optional<double> threshold;
    double reward;
    // Slots of this round that were considered; those after the chosen one are waste.
    int32_t considered;
  };

  explicit SegmentSearch(int32_t max_attempts);

  // Attempts this segment may still take: max_attempts - attempts().
  int32_t attempts_left() const { return max_attempts_ - attempts_; }

  // Considers this round's candidates in slot order: rewards[j], lengths[j] (the response length
  // with the candidate) and draws[j] (the soft rule's u) belong to slot j. Each considered
  // attempt is observed by `calibration`; slots after the chosen one are not considered.
  // Requires 1 <= rewards.size() <= attempts_left() and equal sizes.
  Decision Consider(const std::vector<double>& rewards, const std::vector<int32_t>& lengths,
                    const std::vector<double>& draws, Calibration& calibration);

  int32_t attempts() const { return attempts_; }
  // The rewards of the candidates considered so far, in order.
  const std::vector<double>& rewards() const { return rewards_; }

 private:
  int32_t max_attempts_;
  int32_t attempts_ = 0;
  std::vector<double> rewards_;
  bool has_best_ = false;
  double best_reward_ = 0.0;
  std::optional<double> best_threshold_;
};

}  // namespace stars
