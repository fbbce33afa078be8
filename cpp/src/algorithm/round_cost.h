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
  // A model that `measures` follows the timings it is given. One that does not ignores them and
  // prices every round by the priors alone, so the widths it chooses (and, where width moves
  // numerics, the text) never depend on the machine's load.
  explicit RoundCostModel(bool measures = true) : measures_(measures) {
    if (!measures_) reward_per_row_ = kPriorRewardRowSeconds;
  }

  // One decode step of `n_sequences` one-token sequences took `seconds`.
  void RecordStep(int32_t n_sequences, double seconds);
  // One reward call of `n_rows` rows took `seconds`.
  void RecordReward(int64_t n_rows, double seconds);

  // Estimated seconds of a step of `n_sequences` (>= 0; 0 costs 0), non-decreasing in it: a
  // fixed cost per step plus one per sequence, the least-squares line through the measured
  // sizes; with one size measured, the prior shape 1 + (n - 1) / 3 scaled to it; with nothing
  // measured the prior alone, in ms.
  double StepSeconds(int32_t n_sequences) const;
  double RewardSecondsPerRow() const { return reward_per_row_; }

  // Seconds one prompt's round costs: `width` candidates decoding `steps` steps each and their
  // reward rows, with `other_prompts` prompts decoding alongside. Each step charges the prompt
  // its share of the step's fixed cost and the per-sequence cost of its candidates: a wide
  // round pays where steps cost mostly the same whatever their width (a GPU, a tiny model),
  // never where each sequence costs its own (a CPU running many prompts).
  double RoundSeconds(int32_t other_prompts, int32_t width, int32_t steps) const;

 private:
  struct Line {
    double fixed;         // seconds per step, whatever its sequences
    double per_sequence;  // seconds per sequence in it
  };
  Line StepLine() const;

  // A scored row priced as about five single-sequence steps: a judge reads a segment and its
  // template much as a prefill does, at a few tokens per step's cost.
  static constexpr double kPriorRewardRowSeconds = 5e-3;

  bool measures_;
  std::map<int32_t, double> step_;  // n_sequences -> moving average of seconds
  double reward_per_row_ = 0.0;
  bool reward_measured_ = false;
};

}  // namespace stars
