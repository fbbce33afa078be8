#include "algorithm/round_cost.h"

#include <algorithm>

namespace stars {
namespace {

// Weight of a new measurement in the moving averages: recent enough to follow a machine whose
// load changes, smooth enough that one slow step does not swing the width.
constexpr double kNewWeight = 0.25;

double Prior(int32_t n) { return 1.0 + static_cast<double>(n - 1) / 3.0; }

double Blend(double old_value, double new_value) {
  return old_value + kNewWeight * (new_value - old_value);
}

}  // namespace

void RoundCostModel::RecordStep(int32_t n_sequences, double seconds) {
  if (!measures_ || n_sequences < 1 || !(seconds >= 0.0)) return;
  auto [it, inserted] = step_.emplace(n_sequences, seconds);
  if (!inserted) it->second = Blend(it->second, seconds);
}

void RoundCostModel::RecordReward(int64_t n_rows, double seconds) {
  if (!measures_ || n_rows < 1 || !(seconds >= 0.0)) return;
  const double per_row = seconds / static_cast<double>(n_rows);
  reward_per_row_ = reward_measured_ ? Blend(reward_per_row_, per_row) : per_row;
  reward_measured_ = true;
}

double RoundCostModel::StepSeconds(int32_t n) const {
  if (n <= 0) return 0.0;
  if (step_.empty()) return 1e-3 * Prior(n);
  const auto above = step_.lower_bound(n);
  double estimate;
  if (above != step_.end() && above->first == n) {
    estimate = above->second;
  } else if (above == step_.begin()) {
    estimate = above->second * Prior(n) / Prior(above->first);
  } else {
    const auto below = std::prev(above);
    if (above == step_.end()) {
      estimate = below->second * Prior(n) / Prior(below->first);
    } else {
      const double f = static_cast<double>(n - below->first) / (above->first - below->first);
      estimate = below->second + f * (above->second - below->second);
    }
  }
  // More sequences never cost less: measurement noise must not make a wider round look cheaper.
  for (auto it = step_.begin(); it != step_.end() && it->first <= n; ++it) {
    estimate = std::max(estimate, it->second);
  }
  return estimate;
}

double RoundCostModel::RoundSeconds(int32_t others, int32_t width, int32_t steps) const {
  const double step = StepSeconds(others + width) - StepSeconds(others);
  return static_cast<double>(std::max(steps, 0)) * step + width * reward_per_row_;
}

}  // namespace stars
