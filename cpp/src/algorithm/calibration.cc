#include "algorithm/calibration.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "algorithm/acceptance.h"

namespace stars {

Calibration::Calibration(const GenerationParams& params)
    : acceptance_(params.acceptance),
      fixed_threshold_(params.threshold.has_value()),
      tau_star_(params.threshold.value_or(0.0)),
      beta_(params.beta),
      alpha_(params.alpha),
      max_tokens_(params.max_tokens),
      target_attempts_(params.target_attempts) {
  if (!fixed_threshold_) {
    const double attempts = std::ceil(target_attempts_);
    warmup_ = static_cast<int32_t>(
        std::clamp(attempts, std::min(2.0, static_cast<double>(params.max_attempts)),
                   static_cast<double>(params.max_attempts)));
  }
}

void Calibration::SetEmptyReward(double reward) {
  schedule_.emplace(reward, tau_star_, alpha_, max_tokens_);
}

std::optional<double> Calibration::TargetAcceptance(int32_t length) const {
  if (fixed_threshold_) return std::nullopt;
  const double ramp = std::min(1.0, alpha_ + (1.0 - alpha_) * static_cast<double>(length) /
                                                 static_cast<double>(max_tokens_));
  return 1.0 / (1.0 + (target_attempts_ - 1.0) * ramp);
}

Calibration::Spread Calibration::RecentSpread() const {
  Spread spread;
  if (recent_.empty()) return spread;
  const double n = static_cast<double>(recent_.size());
  double mean_t = 0.0, mean_r = 0.0;
  for (const Attempt& a : recent_) {
    mean_t += a.length;
    mean_r += a.reward;
  }
  mean_t /= n;
  mean_r /= n;
  double stt = 0.0, str = 0.0;
  for (const Attempt& a : recent_) {
    stt += (a.length - mean_t) * (a.length - mean_t);
    str += (a.length - mean_t) * (a.reward - mean_r);
  }
  // A slope needs lengths that differ and a residual left over: three attempts or more.
  const bool fit_slope = stt > 0.0 && recent_.size() >= 3;
  spread.slope = fit_slope ? str / stt : 0.0;
  spread.intercept = mean_r - spread.slope * mean_t;
  const double dof = n - (fit_slope ? 2.0 : 1.0);
  if (dof < 1.0) return spread;
  double squares = 0.0, scale = 0.0;
  for (const Attempt& a : recent_) {
    const double e = a.reward - spread.at(a.length);
    squares += e * e;
    scale = std::max(scale, std::fabs(a.reward));
  }
  spread.sd = std::sqrt(squares / dof);
  // Equal up to rounding (a constant reward, or one exactly linear in length): no spread.
  if (!(spread.sd > 1e-12 * std::max(1.0, scale))) spread.sd = 0.0;
  return spread;
}

std::optional<double> Calibration::Beta(const Spread& spread) const {
  if (acceptance_ == Acceptance::kHard) return std::nullopt;
  if (beta_) return *beta_;
  if (spread.sd == 0.0) return std::nullopt;
  return kAutoBetaSpreads * spread.sd;
}

double Calibration::StandardThreshold(const Spread& spread, double rate,
                                      std::optional<double> beta) const {
  std::vector<double> z;
  z.reserve(recent_.size());
  for (const Attempt& a : recent_) z.push_back((a.reward - spread.at(a.length)) / spread.sd);
  if (!beta) return Quantile(z, 1.0 - rate);  // hard: the top `rate` of recent attempts pass
  // Soft: the tau at which the recent attempts' mean acceptance probability is `rate`. It
  // falls as tau rises, from 1 at min(z) to at most `rate` at max(z) + beta ln(1 / rate).
  const double beta_z = *beta / spread.sd;
  auto mean_acceptance = [&](double tau) {
    double sum = 0.0;
    for (double v : z) sum += SoftAcceptanceProbability(v, tau, beta_z);
    return sum / static_cast<double>(z.size());
  };
  double lo = *std::min_element(z.begin(), z.end());
  double hi = *std::max_element(z.begin(), z.end()) + beta_z * std::log(1.0 / rate);
  for (int i = 0; i < 100 && hi - lo > 1e-12; ++i) {
    const double mid = 0.5 * (lo + hi);
    (mean_acceptance(mid) > rate ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

Calibration::Rule Calibration::Prepare(int32_t length) const {
  Rule rule;
  if (warming_up()) return rule;
  rule.spread = RecentSpread();
  rule.beta = Beta(rule.spread);
  if (fixed_threshold_) {
    rule.tau = schedule_ ? schedule_->At(length) : tau_star_;
  } else if (rule.spread.sd == 0.0) {
    rule.tau = rule.spread.at(length);  // no spread: a reward on the line or above passes
  } else {
    rule.z_tau = StandardThreshold(rule.spread, *TargetAcceptance(length), rule.beta);
    rule.tau = rule.spread.at(length) + rule.spread.sd * rule.z_tau;
  }
  return rule;
}

Calibration::Verdict Calibration::Judge(double reward, int32_t length, double u) const {
  const Rule rule = Prepare(length);
  if (!rule.tau) return {};
  if (fixed_threshold_ || rule.spread.sd == 0.0) {
    const bool soft = rule.beta && fixed_threshold_;
    return {
        soft ? u < SoftAcceptanceProbability(reward, *rule.tau, *rule.beta) : reward >= *rule.tau,
        rule.tau};
  }
  // Auto: decide on standardized rewards, so that an affine change of the reward changes
  // nothing.
  const double z = (reward - rule.spread.at(length)) / rule.spread.sd;
  const bool accepted =
      rule.beta ? u < SoftAcceptanceProbability(z, rule.z_tau, *rule.beta / rule.spread.sd)
                : z >= rule.z_tau;
  return {accepted, rule.tau};
}

void Calibration::Observe(double reward, int32_t length) {
  ++observed_;
  recent_.push_back({reward, length});
  if (recent_.size() > kWindow) recent_.pop_front();
}

}  // namespace stars
