// The STARS acceptance rule, on plain numbers: no llama.h here.
#pragma once

#include "stars/params.h"

namespace stars {

// Probability that the soft rule accepts reward `reward` against threshold `tau`:
// exp(min(0, (reward - tau) / beta)). Requires beta > 0.
double SoftAcceptanceProbability(double reward, double tau, double beta);

// Decides acceptance for one candidate. The soft rule's u ~ U[0, 1) comes from the caller (the
// attempt's key), so a decision depends only on the attempt, not on the order of draws.
class AcceptanceRule {
 public:
  AcceptanceRule(Acceptance kind, double beta);

  // Hard: reward >= tau. Soft: u < SoftAcceptanceProbability(reward, tau, beta).
  bool Accept(double reward, double tau, double u) const;

 private:
  Acceptance kind_;
  double beta_;
};

}  // namespace stars
