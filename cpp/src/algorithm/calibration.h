// A prompt's acceptance threshold and soft-rule temperature (no llama.h here).
//
// A float threshold ramps from r(x, empty) to tau*, as in the STARS paper, in the reward's
// units. threshold="auto" is expressed in the reward's own distribution instead. Rewards often
// drift with the response's length (a judge scores a longer answer differently), so the prompt's
// last kWindow considered attempts are fitted with a line in the response length: their
// residuals, standardized, give the spread at comparable lengths. Each attempt is held to the
// tau at which those attempts, moved to its length, would be accepted at the target rate
// 1 / s(t), where s(t) rises from 1 + alpha (s - 1) at t = 0 to s = target_attempts at
// max_tokens. beta="auto" is kAutoBetaSpreads residual standard deviations. All of it is
// computed on standardized rewards, so replacing r by a*r + b (a > 0) changes no decision.
//
// With threshold="auto" the spread is unknown until some attempts are in: the prompt's first
// segment observes its first warmup_attempts() attempts and keeps the best of them. With a float
// threshold and beta="auto", the hard rule applies until two attempts are in. Only considered
// attempts are observed, so nothing depends on how attempts are grouped into rounds.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

#include "algorithm/threshold_schedule.h"
#include "stars/params.h"

namespace stars {

class Calibration {
 public:
  // Recent considered attempts that the auto threshold and beta are estimated from.
  static constexpr size_t kWindow = 16;
  // beta="auto": this many standard deviations of the recent attempts' rewards.
  static constexpr double kAutoBetaSpreads = 0.5;

  explicit Calibration(const GenerationParams& params);

  // A float threshold ramps from r(x, empty): the engine scores the empty response first and
  // passes it to SetEmptyReward before any attempt is judged.
  bool needs_empty_reward() const { return fixed_threshold_ && !schedule_; }
  void SetEmptyReward(double reward);

  // Attempts of the first segment that are only observed, never accepted (auto threshold): the
  // segment then takes the best of them. ceil(target_attempts) within [2, max_attempts]; 0 for
  // a float threshold.
  int32_t warmup_attempts() const { return warmup_; }
  bool warming_up() const { return observed_ < warmup_; }
  int32_t warmup_left() const { return warming_up() ? warmup_ - observed_ : 0; }

  // The acceptance rate that the auto threshold aims for at response length `length`; empty for
  // a float threshold.
  std::optional<double> TargetAcceptance(int32_t length) const;

  struct Verdict {
    bool accepted = false;
    std::optional<double> threshold;  // the tau the attempt was held to; empty while warming up
  };
  // Judges an attempt with `reward` and response length `length`; `u` ~ U[0, 1) is the soft
  // rule's draw. Never accepts while warming up.
  Verdict Judge(double reward, int32_t length, double u) const;

  // What Judge holds an attempt of response length `length` to, and whether it accepts one.
  std::optional<double> Threshold(int32_t length) const { return Prepare(length).tau; }
  bool Accept(double reward, int32_t length, double u) const {
    return Judge(reward, length, u).accepted;
  }

  // Records a considered attempt's reward and response length.
  void Observe(double reward, int32_t length);

 private:
  // The recent attempts' rewards as a line in the length plus residuals: reward ~ at(length).
  struct Spread {
    double intercept = 0.0;
    double slope = 0.0;
    double sd = 0.0;  // residual standard deviation; 0 when too few attempts, or no spread
    double at(int32_t length) const { return intercept + slope * length; }
  };
  struct Attempt {
    double reward;
    int32_t length;
  };
  Spread RecentSpread() const;
  // The rule for one attempt: everything Judge needs but the reward, computed once.
  struct Rule {
    std::optional<double> tau;   // in the reward's units; empty while warming up
    std::optional<double> beta;  // in the reward's units; empty: the hard rule
    Spread spread;               // auto only: the standardization
    double z_tau = 0.0;          // auto only: tau in standardized units
  };
  Rule Prepare(int32_t length) const;
  // Soft rule's beta for the current spread; empty means the hard rule.
  std::optional<double> Beta(const Spread& spread) const;
  // The auto threshold in standardized units for a target acceptance rate.
  double StandardThreshold(const Spread& spread, double rate, std::optional<double> beta) const;

  Acceptance acceptance_;
  bool fixed_threshold_;
  double tau_star_ = 0.0;
  std::optional<double> beta_;  // empty: auto
  double alpha_;
  int32_t max_tokens_;
  double target_attempts_;
  int32_t warmup_ = 0;
  int32_t observed_ = 0;
  std::optional<ThresholdSchedule> schedule_;
  std::deque<Attempt> recent_;
};

}  // namespace stars
