// The rising threshold tau(t), on plain numbers: no llama.h here.
#pragma once

#include <cstdint>
#include <vector>

namespace stars {

// tau(t) = min(tau*, r0 + t * (tau* - r0) / T) with r0 = (1 - alpha) * r_x + alpha * tau*,
// where r_x = r(x, empty) and t is the response length in tokens.
class ThresholdSchedule {
 public:
  ThresholdSchedule(double reward_empty, double tau_star, double alpha, int32_t max_tokens);

  double At(int32_t response_tokens) const;
  double tau_star() const { return tau_star_; }
  double start() const { return r0_; }

 private:
  double tau_star_;
  double r0_;
  int32_t max_tokens_;
};

// The q-quantile of `values` with linear interpolation between order statistics (numpy's
// default). Requires a non-empty vector and q in [0, 1].
double Quantile(std::vector<double> values, double q);

}  // namespace stars
