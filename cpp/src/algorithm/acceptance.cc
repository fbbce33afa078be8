#include "algorithm/acceptance.h"

#include <algorithm>
#include <cmath>

namespace stars {

double SoftAcceptanceProbability(double reward, double tau, double beta) {
  return std::exp(std::min(0.0, (reward - tau) / beta));
}

AcceptanceRule::AcceptanceRule(Acceptance kind, double beta, uint64_t seed)
    : kind_(kind), beta_(beta), rng_(seed) {}

bool AcceptanceRule::Accept(double reward, double tau) {
  if (kind_ == Acceptance::kHard) return reward >= tau;
  return uniform_(rng_) < SoftAcceptanceProbability(reward, tau, beta_);
}

}  // namespace stars
