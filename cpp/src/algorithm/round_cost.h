// What a round costs, measured by the engine as it runs (no llama.h here): seconds per batched
// decode step by the number of sequences in it, and reward seconds per scored row. The widths
// that pay off differ by backend (on a 2-core CPU four sequences cost about 2x one per step, on
// a GPU about 1.35x), so they are measured, not assumed.
#pragma once

#include <cstdint>
#include <map>

namespace stars {

class RoundCostModel {
 public:
  // One decode step of `n_sequences` one-token sequences took `seconds`.
  void RecordStep(int32_t n_sequences, double seconds);
  // One reward call of `n_rows` rows took `seconds`.
  void RecordReward(int64_t n_rows, double seconds);

  // Estimated seconds of a step of `n_sequences` (>= 0; 0 costs 0), non-decreasing in it.
  // Unmeasured sizes are interpolated between measured ones, or extrapolated from the nearest
  // with the prior shape 1 + (n - 1) / 3; with nothing measured the prior alone, in ms.
  double StepSeconds(int32_t n_sequences) const;
  double RewardSecondsPerRow() const { return reward_per_row_; }
  // Whether a step of `n_sequences` or more has been measured: below that, wider rounds are
  // only a guess.
  bool HasMeasured(int32_t n_sequences) const {
    return step_.lower_bound(n_sequences) != step_.end();
  }

  // Seconds one prompt adds by sampling a round of `width` candidates that decode `steps` steps
  // each, alongside `others` sequences of other prompts, and scoring them.
  double RoundSeconds(int32_t others, int32_t width, int32_t steps) const;

 private:
  std::map<int32_t, double> step_;  // n_sequences -> moving average of seconds
  double reward_per_row_ = 0.0;
  bool reward_measured_ = false;
};

}  // namespace stars
