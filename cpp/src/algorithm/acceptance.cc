#include "algorithm/acceptance.h"

#include <algorithm>
#include <cmath>

namespace stars {

double SoftAcceptanceProbability(double reward, double tau, double beta) {
  return std::exp(std::min(0.0, (reward - tau) / beta));
}

AcceptanceRule::AcceptanceRule(Acceptance kind, double beta) : kind_(kind), beta_(beta) {}

bool AcceptanceRule::Accept(double reward, double tau, double u) const {
  if (kind_ == Acceptance::kHard) return reward >= tau;
  return u < SoftAcceptanceProbability(reward, tau, beta_);
}

}  // namespace stars
