#include "algorithm/acceptance.h"

#include <algorithm>
#include <cmath>

namespace stars {

double SoftAcceptanceProbability(double reward, double tau, double beta) {
  return std::exp(std::min(0.0, (reward - tau) / beta));
}

}  // namespace stars
