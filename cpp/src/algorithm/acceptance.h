// The soft acceptance rule, on plain numbers: no llama.h here.
#pragma once

namespace stars {

// Probability that the soft rule accepts reward `reward` against threshold `tau`:
// exp(min(0, (reward - tau) / beta)). Requires beta > 0.
double SoftAcceptanceProbability(double reward, double tau, double beta);

}  // namespace stars
