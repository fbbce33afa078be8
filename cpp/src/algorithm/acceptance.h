// The STARS acceptance rule (DESIGN section 1), on plain numbers: no llama.h here.
#pragma once

#include <cstdint>
#include <random>

#include "stars/params.h"

namespace stars {

// Probability that the soft rule accepts reward `reward` against threshold `tau`:
// exp(min(0, (reward - tau) / beta)). Requires beta > 0.
double SoftAcceptanceProbability(double reward, double tau, double beta);

// Decides acceptance for one candidate at a time, drawing u ~ U(0, 1) from its own seeded
// generator so that a prompt's decisions depend only on its seed.
class AcceptanceRule {
 public:
  AcceptanceRule(Acceptance kind, double beta, uint64_t seed);

  // Returns true when the candidate is accepted. Soft draws one u per call, hard draws none.
  bool Accept(double reward, double tau);

 private:
  Acceptance kind_;
  double beta_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
};

}  // namespace stars
