#include "algorithm/round_width.h"

#include <algorithm>

namespace stars {

double EstimateAcceptance(int64_t accepted, int64_t considered) {
  if (considered <= 0) return kUnseenAcceptance;
  return std::clamp(static_cast<double>(accepted) / static_cast<double>(considered), 0.0, 1.0);
}

double ExpectedSecondsToSegment(int32_t width, int32_t attempts_left, double p,
                                const std::function<double(int32_t)>& round_seconds) {
  double expected = 0.0;
  double none_yet = 1.0;  // probability that no earlier round accepted
  for (int32_t left = attempts_left; left > 0 && none_yet > 0.0;) {
    const int32_t n = std::min(width, left);
    expected += none_yet * round_seconds(n);
    for (int32_t i = 0; i < n; ++i) none_yet *= 1.0 - p;
    left -= n;
  }
  return expected;
}

int32_t ChooseRoundWidth(int32_t max_width, int32_t attempts_left, double p,
                         const std::function<double(int32_t)>& round_seconds) {
  int32_t best = 1;
  double best_seconds = ExpectedSecondsToSegment(1, attempts_left, p, round_seconds);
  for (int32_t width = 2; width <= max_width; ++width) {
    const double seconds = ExpectedSecondsToSegment(width, attempts_left, p, round_seconds);
    // A relative margin, so that rounding never widens a round for nothing.
    if (seconds < best_seconds * (1.0 - 1e-9)) {
      best = width;
      best_seconds = seconds;
    }
  }
  return best;
}

}  // namespace stars
