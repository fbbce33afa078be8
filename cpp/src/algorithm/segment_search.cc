#include "algorithm/segment_search.h"

namespace stars {

SegmentSearch::SegmentSearch(int32_t max_attempts) : max_attempts_(max_attempts) {}

SegmentSearch::Decision SegmentSearch::Consider(const std::vector<double>& rewards,
                                                const std::vector<int32_t>& lengths,
                                                const std::vector<double>& draws,
                                                Calibration& calibration) {
  int32_t new_best_slot = -1;
  for (size_t j = 0; j < rewards.size(); ++j) {
    const int32_t slot = static_cast<int32_t>(j);
    const bool warming_up = calibration.warming_up();
    const auto [accepted, threshold] = calibration.Judge(rewards[j], lengths[j], draws[j]);
    calibration.Observe(rewards[j], lengths[j]);
    ++attempts_;
    rewards_.push_back(rewards[j]);
    // Strictly greater keeps the earliest of equal rewards, as drawing one at a time would.
    if (!has_best_ || rewards[j] > best_reward_) {
      has_best_ = true;
      best_reward_ = rewards[j];
      best_threshold_ = threshold;
      new_best_slot = slot;
    }
    if (accepted) {
      return {Outcome::kAccepted, slot, new_best_slot, threshold, rewards[j], slot + 1};
    }
    if (warming_up && !calibration.warming_up()) {
      return {Outcome::kWarmup, new_best_slot, new_best_slot, std::nullopt, best_reward_, slot + 1};
    }
  }
  const int32_t considered = static_cast<int32_t>(rewards.size());
  if (attempts_ >= max_attempts_) {
    return {Outcome::kFallback, new_best_slot, new_best_slot,
            best_threshold_,    best_reward_,  considered};
  }
  return {Outcome::kContinue, -1, new_best_slot, std::nullopt, 0.0, considered};
}

}  // namespace stars
