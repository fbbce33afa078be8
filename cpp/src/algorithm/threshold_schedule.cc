#include "algorithm/threshold_schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace stars {

ThresholdSchedule::ThresholdSchedule(double reward_empty, double tau_star, double alpha,
                                     int32_t max_tokens)
    : tau_star_(tau_star),
      r0_((1.0 - alpha) * reward_empty + alpha * tau_star),
      max_tokens_(max_tokens) {}

double ThresholdSchedule::At(int32_t response_tokens) const {
  const double ramp = r0_ + static_cast<double>(response_tokens) * (tau_star_ - r0_) /
                                static_cast<double>(max_tokens_);
  return std::min(tau_star_, ramp);
}

double Quantile(std::vector<double> values, double q) {
  if (values.empty()) throw std::invalid_argument("Quantile of an empty set");
  std::sort(values.begin(), values.end());
  const double position = q * static_cast<double>(values.size() - 1);
  const size_t lower = static_cast<size_t>(std::floor(position));
  const size_t upper = std::min(lower + 1, values.size() - 1);
  const double fraction = position - static_cast<double>(lower);
  return values[lower] + fraction * (values[upper] - values[lower]);
}

}  // namespace stars
