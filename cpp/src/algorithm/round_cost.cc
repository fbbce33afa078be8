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

RoundCostModel::Line RoundCostModel::StepLine() const {
  // The prior, 1 + (n - 1) / 3: two thirds of a lone step are fixed cost.
  if (step_.size() <= 1) {
    const double scale = step_.empty() ? 1e-3 : step_.begin()->second / Prior(step_.begin()->first);
    return {scale * 2.0 / 3.0, scale / 3.0};
  }
  // The least-squares line through every measured size. Reading neighbouring sizes off their
  // noisy averages instead could make an extra sequence look free, and widen rounds for nothing.
  double sn = 0, ss = 0, snn = 0, sns = 0;
  const double k = static_cast<double>(step_.size());
  for (const auto& [size, seconds] : step_) {
    sn += size;
    ss += seconds;
    snn += static_cast<double>(size) * size;
    sns += size * seconds;
  }
  const double b = (k * sns - sn * ss) / (k * snn - sn * sn);
  const double a = (ss - b * sn) / k;
  if (b < 0.0) return {ss / k, 0.0};     // more sequences never cost less
  if (a < 0.0) return {0.0, sns / snn};  // nor a step less than nothing: through the origin
  return {a, b};
}

double RoundCostModel::StepSeconds(int32_t n) const {
  if (n <= 0) return 0.0;
  const Line line = StepLine();
  return line.fixed + line.per_sequence * n;
}

double RoundCostModel::RoundSeconds(int32_t other_prompts, int32_t width, int32_t steps) const {
  const Line line = StepLine();
  const double step =
      line.fixed / (std::max(other_prompts, 0) + 1) + line.per_sequence * std::max(width, 0);
  return static_cast<double>(std::max(steps, 0)) * step + width * reward_per_row_;
}

}  // namespace stars
