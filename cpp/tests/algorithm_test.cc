// Unit tests (GoogleTest) of the acceptance rule, threshold schedule, segment search, response
// text bookkeeping and parameter validation, on plain numbers: one test suite per component.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "algorithm/acceptance.h"
#include "algorithm/admission.h"
#include "algorithm/attempt_key.h"
#include "algorithm/calibration.h"
#include "algorithm/response_text.h"
#include "algorithm/round_cost.h"
#include "algorithm/round_width.h"
#include "algorithm/segment_search.h"
#include "algorithm/threshold_schedule.h"
#include "algorithm/token_logprobs.h"
#include "algorithm/ubatch_guard.h"
#include "stars/errors.h"
#include "stars/param_spec.h"
#include "stars/params.h"

namespace {

bool Throws(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
  } catch (const stars::ParameterError& e) {
    return std::string(e.what()).find(needle) != std::string::npos;
  }
  return false;
}

TEST(Acceptance, SoftProbability) {
  EXPECT_NEAR(stars::SoftAcceptanceProbability(2.0, 1.0, 0.7), 1.0, 1e-12);
  EXPECT_NEAR(stars::SoftAcceptanceProbability(1.0, 1.0, 0.7), 1.0, 1e-12);
  EXPECT_NEAR(stars::SoftAcceptanceProbability(0.3, 1.0, 0.7), std::exp(-1.0), 1e-12);
}

// A calibration for a float threshold and the given acceptance (alpha 0.5, T 100, M 16).
stars::Calibration FixedCalibration(double tau, stars::Acceptance acceptance,
                                    std::optional<double> beta) {
  stars::GenerationParams p;
  p.threshold = tau;
  p.acceptance = acceptance;
  p.beta = beta;
  p.max_tokens = 100;
  p.max_attempts = 16;
  stars::Calibration calibration(p);
  calibration.SetEmptyReward(tau);  // a flat schedule at tau
  return calibration;
}

TEST(Calibration, FixedThreshold) {
  auto hard = FixedCalibration(1.0, stars::Acceptance::kHard, std::nullopt);
  EXPECT_TRUE(hard.warmup_attempts() == 0 && !hard.warming_up());
  EXPECT_TRUE(hard.Accept(1.0, 10, 0.99));
  EXPECT_FALSE(hard.Accept(0.999, 10, 0.0));
  EXPECT_NEAR(*hard.Threshold(50), 1.0, 1e-12);
  // Soft with a float beta: u < exp((R - tau) / beta).
  auto soft = FixedCalibration(0.5, stars::Acceptance::kSoft, 0.7);
  const double p = stars::SoftAcceptanceProbability(0.0, 0.5, 0.7);
  EXPECT_TRUE(soft.Accept(0.0, 10, p - 1e-9));
  EXPECT_FALSE(soft.Accept(0.0, 10, p));
  // The attempt keys' draws are uniform: the acceptance frequency matches the probability.
  const int draws = 20000;
  int accepted = 0;
  for (int i = 0; i < draws; ++i) {
    const uint64_t key = stars::AttemptKey(42, 7, static_cast<uint64_t>(i / 16), i % 16);
    accepted += soft.Accept(0.0, 10, stars::AcceptanceDraw(key)) ? 1 : 0;
  }
  const double sigma = std::sqrt(p * (1 - p) / draws);
  EXPECT_NEAR(static_cast<double>(accepted) / draws, p, 4 * sigma);
  // A float threshold with beta="auto": hard until two attempts give a spread, then soft.
  auto mixed = FixedCalibration(0.5, stars::Acceptance::kSoft, std::nullopt);
  EXPECT_FALSE(mixed.Accept(0.4, 10, 0.0));
  mixed.Observe(0.0, 10);
  mixed.Observe(1.0, 10);  // sd 0.707, beta 0.354
  EXPECT_TRUE(mixed.Accept(0.4, 10, 0.5 * std::exp(-0.1 / (0.5 * std::sqrt(0.5)))));
}

stars::GenerationParams AutoParams(stars::Acceptance acceptance, double target) {
  stars::GenerationParams p;
  p.acceptance = acceptance;
  p.target_attempts = target;
  p.max_tokens = 100;
  p.max_attempts = 16;
  p.alpha = 1.0;  // no ramp: the target rate is 1 / target_attempts at every length
  return p;
}

TEST(Calibration, AutoWarmupAndTarget) {
  for (auto acceptance : {stars::Acceptance::kHard, stars::Acceptance::kSoft}) {
    stars::Calibration calibration(AutoParams(acceptance, 4.0));
    EXPECT_EQ(calibration.warmup_attempts(), 4);
    EXPECT_TRUE(!calibration.TargetAcceptance(0) || *calibration.TargetAcceptance(0) == 0.25);
    std::mt19937_64 rng(1);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (int i = 0; i < 4; ++i) {
      EXPECT_TRUE(calibration.warming_up() && !calibration.Accept(100.0, 0, 0.0));
      EXPECT_FALSE(calibration.Threshold(0));
      calibration.Observe(normal(rng), 0);
    }
    EXPECT_FALSE(calibration.warming_up());
    // On i.i.d. rewards the realized acceptance rate is near the target, 1 / 4.
    int accepted = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
      const double r = normal(rng);
      accepted += calibration.Accept(r, 50, stars::AcceptanceDraw(static_cast<uint64_t>(i)));
      calibration.Observe(r, 50);
    }
    EXPECT_NEAR(static_cast<double>(accepted) / n, 0.25, 0.03);
  }
  // The ramp: the target rate starts at 1 / (1 + alpha (s - 1)) and reaches 1 / s at T.
  auto p = AutoParams(stars::Acceptance::kHard, 5.0);
  p.alpha = 0.5;
  stars::Calibration ramp(p);
  EXPECT_NEAR(*ramp.TargetAcceptance(0), 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(*ramp.TargetAcceptance(100), 0.2, 1e-12);
  EXPECT_NEAR(*ramp.TargetAcceptance(200), 0.2, 1e-12);
  // max_attempts bounds the warm-up; target 1 accepts everything after two attempts.
  p.max_attempts = 3;
  p.target_attempts = 8.0;
  EXPECT_EQ(stars::Calibration(p).warmup_attempts(), 3);
  p.target_attempts = 1.0;
  p.max_attempts = 16;
  stars::Calibration lenient(p);
  EXPECT_EQ(lenient.warmup_attempts(), 2);
  lenient.Observe(0.0, 10);
  lenient.Observe(1.0, 10);
  // Rate 1: the threshold sits at the lowest recent reward.
  EXPECT_NEAR(*lenient.Threshold(10), 0.0, 1e-9);
  EXPECT_TRUE(lenient.Accept(0.0, 10, 0.999));
  EXPECT_FALSE(lenient.Accept(-5.0, 10, 0.999));
}

TEST(Calibration, AutoIsAffineInvariant) {
  // r and 7.5 r - 3 give the same decisions, draw by draw, for hard and soft.
  for (auto acceptance : {stars::Acceptance::kHard, stars::Acceptance::kSoft}) {
    auto p = AutoParams(acceptance, 3.0);
    p.alpha = 0.5;
    stars::Calibration a(p), b(p);
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> reward(-1.0, 2.0);
    int same = 0, accepted = 0;
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
      const double r = reward(rng) + 0.01 * (i % 100);  // a drift with length
      const int32_t length = i % 100;
      const double u = stars::AcceptanceDraw(static_cast<uint64_t>(i));
      const bool x = a.Accept(r, length, u);
      same += x == b.Accept(7.5 * r - 3.0, length, u);
      accepted += x;
      if (a.Threshold(length)) {
        EXPECT_NEAR(*b.Threshold(length), 7.5 * *a.Threshold(length) - 3.0, 1e-9);
      }
      a.Observe(r, length);
      b.Observe(7.5 * r - 3.0, length);
    }
    EXPECT_EQ(same, n);
    EXPECT_TRUE(accepted > n / 6 && accepted < n / 2);
  }
}

TEST(Calibration, AutoThresholdFollowsTheRewardLevel) {
  // Rewards that grow with length: the auto threshold follows the recent attempts up.
  stars::Calibration calibration(AutoParams(stars::Acceptance::kHard, 3.0));
  for (int i = 0; i < 8; ++i) calibration.Observe(0.1 * (i % 4), 10);
  const double early = *calibration.Threshold(10);
  for (int i = 0; i < 16; ++i) calibration.Observe(5.0 + 0.1 * (i % 4), 90);
  EXPECT_GT(*calibration.Threshold(90), early + 4.0);
  // A reward that rises with length (3 per token, plus noise): the fitted line carries the
  // threshold to the next length, so the next segment is held to more than the last one got.
  stars::Calibration trend(AutoParams(stars::Acceptance::kHard, 3.0));
  for (int i = 0; i < 16; ++i) {
    const int32_t length = 4 * (1 + i / 4);
    trend.Observe(3.0 * length + 0.5 * (i % 4), length);
  }
  EXPECT_GT(*trend.Threshold(20), 3.0 * 20);  // above the line's value there: the top third
  EXPECT_LT(*trend.Threshold(20), 3.0 * 20 + 2.0);
  EXPECT_FALSE(trend.Accept(3.0 * 16 + 1.5, 20, 0.0));  // last segment's best, not enough now
}

TEST(AttemptKey, DistinctStableAndUniform) {
  // Every (seed, prompt, segment, attempt) gets its own key, the same each time.
  std::set<uint64_t> keys;
  for (uint64_t seed = 0; seed < 3; ++seed)
    for (uint64_t prompt = 0; prompt < 3; ++prompt)
      for (uint64_t segment = 0; segment < 8; ++segment)
        for (uint64_t attempt = 0; attempt < 8; ++attempt)
          keys.insert(stars::AttemptKey(seed, prompt, segment, attempt));
  EXPECT_EQ(keys.size(), 3u * 3 * 8 * 8);
  EXPECT_EQ(stars::AttemptKey(1, 2, 3, 4), stars::AttemptKey(1, 2, 3, 4));
  double lo = 1, hi = 0;
  for (uint64_t k = 0; k < 1000; ++k) {
    const double u = stars::AcceptanceDraw(stars::AttemptKey(9, 9, 0, k));
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  EXPECT_TRUE(lo >= 0.0 && lo < 0.01 && hi < 1.0 && hi > 0.99);
  // Prompt keys: tokens and occurrence, or an explicit id; none of them collide here.
  const std::vector<int32_t> a = {1, 2, 3}, b = {1, 2, 4};
  EXPECT_EQ(stars::PromptKeyOfTokens(a, 0), stars::PromptKeyOfTokens(a, 0));
  EXPECT_NE(stars::PromptKeyOfTokens(a, 0), stars::PromptKeyOfTokens(a, 1));
  EXPECT_NE(stars::PromptKeyOfTokens(a, 0), stars::PromptKeyOfTokens(b, 0));
  EXPECT_EQ(stars::PromptKeyOfId("17"), stars::PromptKeyOfId("17"));
  EXPECT_NE(stars::PromptKeyOfId("17"), stars::PromptKeyOfId("18"));
  EXPECT_NE(stars::PromptKeyOfId(""), stars::PromptKeyOfTokens({}, 0));
}

TEST(RoundWidth, ChoosesTheCheapestExpectedWidth) {
  EXPECT_NEAR(stars::EstimateAcceptance(0, 0), stars::kUnseenAcceptance, 0);
  EXPECT_NEAR(stars::EstimateAcceptance(1, 4), 0.25, 1e-12);
  // A CPU-like round: 4 sequences cost 2x one.
  auto cpu = [](int32_t n) { return 1.0 + (n - 1) / 3.0; };
  // Certain acceptance: one candidate, whatever the cost.
  EXPECT_EQ(stars::ChooseRoundWidth(4, 16, 1.0, cpu), 1);
  EXPECT_EQ(stars::ChooseRoundWidth(4, 16, 1.0, [](int32_t) { return 1.0; }), 1);  // a tie
  // E(1) = 1 / p; E(4) = 2 / (1 - (1 - p)^4) without the fallback: wide rounds win at p = 1/4.
  EXPECT_NEAR(stars::ExpectedSecondsToSegment(1, 1000, 0.25, cpu), 4.0, 1e-9);
  EXPECT_NEAR(stars::ExpectedSecondsToSegment(4, 1000, 0.25, cpu), 2.0 / (1 - std::pow(0.75, 4)),
              1e-9);
  EXPECT_EQ(stars::ChooseRoundWidth(4, 16, 0.25, cpu), 3);  // E(3) = 2.88 < E(4) = 2.90
  EXPECT_EQ(stars::ChooseRoundWidth(4, 16, 0.9, cpu), 1);
  // A GPU-like round (4 cost 1.35x one) widens sooner than a CPU-like one.
  auto gpu = [](int32_t n) { return 1.0 + 0.35 * (n - 1) / 3.0; };
  EXPECT_GT(stars::ChooseRoundWidth(4, 16, 0.6, gpu), stars::ChooseRoundWidth(4, 16, 0.6, cpu));
  // Never wider than allowed; with nothing ever accepted, the cap is reached in the fewest
  // rounds that cost least.
  EXPECT_EQ(stars::ChooseRoundWidth(2, 16, 0.0, cpu), 2);
  // The fallback bounds the expectation: with 3 attempts left at p = 0, width 1 costs 3 rounds.
  EXPECT_NEAR(stars::ExpectedSecondsToSegment(1, 3, 0.0, cpu), 3.0, 1e-12);
  EXPECT_NEAR(stars::ExpectedSecondsToSegment(2, 3, 0.0, cpu), cpu(2) + cpu(1), 1e-12);
}

TEST(RoundCost, FitsMeasuredStepsAndRewards) {
  stars::RoundCostModel costs;
  // Nothing measured: the prior shape, never decreasing.
  EXPECT_EQ(costs.StepSeconds(0), 0.0);
  EXPECT_GT(costs.StepSeconds(4), costs.StepSeconds(1));
  costs.RecordStep(1, 0.010);
  EXPECT_NEAR(costs.StepSeconds(4), 0.010 * 2.0, 1e-12);  // one size: the prior's shape
  costs.RecordStep(4, 0.020);
  // The line through (1, 10 ms) and (4, 20 ms): 6.67 ms a step plus 3.33 ms a sequence.
  EXPECT_NEAR(costs.StepSeconds(1), 0.010, 1e-12);
  EXPECT_NEAR(costs.StepSeconds(2), 0.010 + 0.010 / 3, 1e-12);
  EXPECT_NEAR(costs.StepSeconds(8), 0.020 + 4 * 0.010 / 3, 1e-12);
  costs.RecordReward(10, 0.05);
  EXPECT_NEAR(costs.RewardSecondsPerRow(), 0.005, 1e-12);
  // A round alone: its steps and its rows. Beside 3 other prompts: a quarter of each step's
  // fixed cost, and the per-sequence cost of its own candidates.
  EXPECT_NEAR(costs.RoundSeconds(0, 4, 15), 15 * 0.020 + 4 * 0.005, 1e-12);
  EXPECT_NEAR(costs.RoundSeconds(3, 1, 15), 15 * (0.020 / 3 / 4 + 0.010 / 3) + 0.005, 1e-12);
  // Moving average: a new value moves the estimate of its size a quarter of the way.
  costs.RecordStep(1, 0.014);
  EXPECT_NEAR(costs.StepSeconds(1), 0.011, 1e-12);  // the line through (1, 11) and (4, 20)

  // Noise: 12 and 13 sequences measured the wrong way round. An extra sequence still costs
  // about the per-sequence slope of every size, never nothing.
  stars::RoundCostModel noisy;
  for (int32_t n : {1, 4, 8, 12, 13, 16}) noisy.RecordStep(n, 0.001 * n);
  for (int i = 0; i < 3; ++i) noisy.RecordStep(13, 0.010);
  const double extra = noisy.StepSeconds(13) - noisy.StepSeconds(12);
  EXPECT_TRUE(extra > 0.0005 && extra < 0.0015);
  // Every sequence costs its own and nothing is fixed: beside other prompts a wider round
  // never pays, whatever the acceptance rate.
  stars::RoundCostModel linear;
  for (int32_t n : {1, 4, 8, 12, 16}) linear.RecordStep(n, 0.001 * n);
  linear.RecordReward(4, 0.004);
  for (double p : {0.05, 0.2, 0.5, 0.9}) {
    EXPECT_EQ(stars::ChooseRoundWidth(
                  4, 8, p, [&](int32_t width) { return linear.RoundSeconds(11, width, 15); }),
              1);
  }
  // Steps that are mostly fixed cost (a tiny model, a GPU): an unlikely
  // acceptance is worth a wide round, a likely one is not.
  stars::RoundCostModel flat;
  for (int32_t n : {1, 2, 4, 8}) flat.RecordStep(n, 0.010 + 0.003 * n);
  const auto flat_width = [&](double p) {
    return stars::ChooseRoundWidth(4, 8, p,
                                   [&](int32_t width) { return flat.RoundSeconds(1, width, 15); });
  };
  EXPECT_TRUE(flat_width(0.1) == 4 && flat_width(0.95) == 1);
  // More sequences never cost less, even when the measurements say so.
  stars::RoundCostModel falling;
  falling.RecordStep(1, 0.010);
  falling.RecordStep(6, 0.001);
  EXPECT_GE(falling.StepSeconds(6), falling.StepSeconds(1));

  // A model that does not measure prices rounds by its priors whatever it is told.
  stars::RoundCostModel fixed(false);
  const double before = fixed.RoundSeconds(2, 3, 15);
  fixed.RecordStep(3, 1.0);
  fixed.RecordStep(5, 9.0);
  fixed.RecordReward(4, 7.0);
  EXPECT_EQ(fixed.RoundSeconds(2, 3, 15), before);
  EXPECT_GT(fixed.RewardSecondsPerRow(), 0.0);
}

TEST(ThresholdSchedule, RampsToTheTarget) {
  // r_x = 0, tau* = 2, alpha = 0.5: r0 = 1, tau(t) = 1 + t / T, reaching 2 at T.
  stars::ThresholdSchedule schedule(0.0, 2.0, 0.5, 100);
  EXPECT_NEAR(schedule.start(), 1.0, 1e-12);
  EXPECT_NEAR(schedule.At(0), 1.0, 1e-12);
  EXPECT_NEAR(schedule.At(50), 1.5, 1e-12);
  EXPECT_NEAR(schedule.At(100), 2.0, 1e-12);
  EXPECT_NEAR(schedule.At(150), 2.0, 1e-12);
  // r(x, empty) above tau*: r0 > tau*, and the min keeps tau at tau*.
  stars::ThresholdSchedule above(4.0, 2.0, 0.5, 100);
  EXPECT_NEAR(above.At(0), 2.0, 1e-12);
}

TEST(ThresholdSchedule, Quantile) {
  EXPECT_NEAR(stars::Quantile({5, 1, 4, 2, 3}, 0.8), 4.2, 1e-12);  // numpy.quantile
  EXPECT_NEAR(stars::Quantile({1, 2}, 0.8), 1.8, 1e-12);
  EXPECT_NEAR(stars::Quantile({3}, 0.8), 3.0, 1e-12);
}

const std::vector<double> kNoDraws = {0, 0, 0, 0};
const std::vector<int32_t> kLengths = {4, 4, 4, 4};

TEST(SegmentSearch, AcceptStopsConsidering) {
  stars::SegmentSearch search(16);
  auto hard = FixedCalibration(1.0, stars::Acceptance::kHard, std::nullopt);
  EXPECT_EQ(search.attempts_left(), 16);
  const auto d = search.Consider({0.1, 0.5, 2.0, 3.0}, kLengths, kNoDraws, hard);
  EXPECT_EQ(d.outcome, stars::SegmentSearch::Outcome::kAccepted);
  EXPECT_EQ(d.chosen_slot, 2);
  EXPECT_EQ(d.considered, 3);  // slot 3 is waste
  EXPECT_EQ(search.attempts(), 3);
  EXPECT_EQ(search.rewards().size(), 3u);
}

TEST(SegmentSearch, IsWidthFree) {
  // The same attempts in rounds of 1, 2 and 4 give the same decision at the same attempt, with
  // a float threshold and with an auto one (whose warm-up is the first 3 attempts).
  const std::vector<double> rewards = {0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 0.2, 0.1};
  const std::vector<double> draws = {0.9, 0.8, 0.7, 0.9, 0.95, 0.1, 0.5, 0.5};
  for (bool automatic : {false, true}) {
    int32_t attempts = -1;
    for (size_t width : {1, 2, 4}) {
      stars::GenerationParams p;
      p.max_attempts = 8;
      p.threshold = automatic ? std::nullopt : std::optional<double>(1.0);
      p.beta = 0.3;
      p.target_attempts = 3.0;  // a warm-up of 3 attempts
      stars::Calibration calibration(p);
      if (!automatic) calibration.SetEmptyReward(1.0);
      stars::SegmentSearch search(8);
      stars::SegmentSearch::Decision d{};
      for (size_t at = 0; at < rewards.size(); at += width) {
        const std::vector<double> r(rewards.begin() + at, rewards.begin() + at + width);
        const std::vector<double> u(draws.begin() + at, draws.begin() + at + width);
        d = search.Consider(r, std::vector<int32_t>(width, 4), u, calibration);
        if (d.outcome != stars::SegmentSearch::Outcome::kContinue) break;
      }
      if (attempts < 0) attempts = search.attempts();
      EXPECT_EQ(search.attempts(), attempts);
      if (!automatic) {
        // exp((0.9 - 1) / 0.3) = 0.72 > 0.1: attempt 6 (index 5) is the first accepted.
        EXPECT_EQ(d.outcome, stars::SegmentSearch::Outcome::kAccepted);
        EXPECT_EQ(search.attempts(), 6);
        EXPECT_NEAR(d.reward, 0.9, 0);
      } else {
        // The first segment of an auto threshold takes the best of its warm-up.
        EXPECT_EQ(d.outcome, stars::SegmentSearch::Outcome::kWarmup);
        EXPECT_TRUE(search.attempts() == 3 && !d.threshold);
        EXPECT_NEAR(d.reward, 0.3, 0);
      }
    }
  }
}

TEST(SegmentSearch, FallbackAcrossRounds) {
  // M = 6: rounds of 4 then 2; the best (0.9) is in round one.
  stars::SegmentSearch search(6);
  auto hard = FixedCalibration(1.0, stars::Acceptance::kHard, std::nullopt);
  auto d = search.Consider({0.1, 0.9, 0.3, 0.9}, kLengths, kNoDraws, hard);
  EXPECT_EQ(d.outcome, stars::SegmentSearch::Outcome::kContinue);
  EXPECT_EQ(d.new_best_slot, 1);  // ties keep the earliest
  EXPECT_EQ(search.attempts_left(), 2);
  d = search.Consider({0.2, 0.4}, {4, 4}, kNoDraws, hard);
  EXPECT_EQ(d.outcome, stars::SegmentSearch::Outcome::kFallback);
  EXPECT_EQ(d.chosen_slot, -1);  // the kept best of an earlier round
  EXPECT_EQ(d.new_best_slot, -1);
  EXPECT_NEAR(d.reward, 0.9, 1e-12);
  EXPECT_NEAR(*d.threshold, 1.0, 1e-12);
  EXPECT_EQ(search.attempts(), 6);
}

TEST(SegmentSearch, FallbackInLastRound) {
  stars::SegmentSearch search(4);
  auto hard = FixedCalibration(1.0, stars::Acceptance::kHard, std::nullopt);
  search.Consider({0.1, 0.2}, {4, 4}, kNoDraws, hard);
  const auto d = search.Consider({0.5, 0.3}, {4, 4}, kNoDraws, hard);
  EXPECT_EQ(d.outcome, stars::SegmentSearch::Outcome::kFallback);
  EXPECT_EQ(d.chosen_slot, 0);
  EXPECT_EQ(d.new_best_slot, 0);
}

TEST(ResponseText, Utf8StopStringsAndShowablePrefix) {
  EXPECT_EQ(stars::CompleteUtf8Prefix("abc"), 3);
  EXPECT_EQ(stars::CompleteUtf8Prefix("a\xc3"), 1);             // first byte of "é"
  EXPECT_EQ(stars::CompleteUtf8Prefix("a\xc3\xa9"), 3);         // whole "é"
  EXPECT_EQ(stars::CompleteUtf8Prefix("a\xe2\x82"), 1);         // 2 of 3 bytes of "€"
  EXPECT_EQ(stars::CompleteUtf8Prefix("\xf0\x9f\x98\x80"), 4);  // whole emoji
  const std::vector<std::string> stop = {"\n\n", "END"};
  EXPECT_EQ(stars::FindStop("", "hello END there", 0, stop), 6);
  EXPECT_FALSE(stars::FindStop("", "hello EN", 0, stop));
  EXPECT_EQ(stars::FindStop("", "hello END", 8, stop), 6);     // a match ending in the new text
  EXPECT_FALSE(stars::FindStop("", "END and more", 9, stop));  // searched already
  // Across the segment boundary: the trunk ends with "EN", the segment starts with "D".
  EXPECT_EQ(stars::FindStop("hello EN", "D more", 0, stop), -2);
  EXPECT_EQ(stars::FindStop("hello E", "ND", 1, stop), -1);
  EXPECT_FALSE(stars::FindStop("hello E", "ND", 2, stop));  // completed earlier, searched already
  EXPECT_EQ(stars::FindStop("x\n", "\nEND", 0, stop), -1);  // the earliest of two
  EXPECT_FALSE(stars::FindStop("hello EN", "d", 0, stop));
  // Held back: a suffix that may start a stop string, or a split UTF-8 character.
  EXPECT_EQ(stars::ShowablePrefix("hello EN", stop), 6);
  EXPECT_EQ(stars::ShowablePrefix("hello E", stop), 6);
  EXPECT_EQ(stars::ShowablePrefix("hello\n", stop), 5);
  EXPECT_EQ(stars::ShowablePrefix("hello", stop), 5);
  EXPECT_EQ(stars::ShowablePrefix("a\xc3", {}), 1);
}

TEST(Params, Validation) {
  stars::GenerationParams p;
  p.Validate(true);
  EXPECT_TRUE(Throws(
      [&] {
        auto q = p;
        q.segment_tokens = 0;
        q.Validate(true);
      },
      "segment_tokens"));
  EXPECT_TRUE(Throws(
      [&] {
        auto q = p;
        q.candidates = 0;
        q.Validate(true);
      },
      "candidates"));
  EXPECT_TRUE(Throws(
      [&] {
        auto q = p;
        q.max_attempts = 0;
        q.Validate(true);
      },
      "max_attempts"));
  EXPECT_TRUE(Throws(
      [&] {
        auto q = p;
        q.max_tokens = 0;
        q.Validate(true);
      },
      "max_tokens"));
  EXPECT_TRUE(Throws(
      [&] {
        auto q = p;
        q.sampling.temperature = -1;
        q.Validate(true);
      },
      "temperature"));
  EXPECT_TRUE(Throws(
      [&] {
        auto q = p;
        q.sampling.top_p = 0;
        q.Validate(true);
      },
      "top_p"));
  EXPECT_TRUE(Throws(
      [&] {
        auto q = p;
        q.sampling.top_p = 1.5f;
        q.Validate(true);
      },
      "top_p"));
  EXPECT_TRUE(Throws(
      [&] {
        auto q = p;
        q.beta = 0;
        q.Validate(true);
      },
      "beta"));
  EXPECT_TRUE(Throws(
      [&] {
        auto q = p;
        q.alpha = 2;
        q.Validate(true);
      },
      "alpha"));
  EXPECT_TRUE(Throws([&] { p.Validate(false); }, "needs a reward"));
  EXPECT_TRUE(Throws(
      [&] {
        auto q = p;
        q.target_attempts = 0.5;
        q.Validate(true);
      },
      "target_attempts"));
  EXPECT_TRUE(Throws([] { stars::ParseMode("beam"); }, "mode"));
  EXPECT_TRUE(Throws([] { stars::ParseAcceptance("maybe"); }, "acceptance"));
  EXPECT_TRUE(Throws([] { stars::ParseWidth("wide"); }, "width"));
  EXPECT_EQ(stars::ParseWidth(stars::WidthName(stars::Width::kFixed)), stars::Width::kFixed);
  auto plain = p;
  plain.mode = stars::Mode::kPlain;
  plain.Validate(false);
}

TEST(UbatchGuard, GroupsOfThreeOnAGpu) {
  using stars::GuardedUbatch;
  // SmolLM2-135M: 9 query heads over 3 KV heads, on a GPU: capped.
  EXPECT_TRUE(stars::UbatchGuardApplies(9, 3, true));
  EXPECT_EQ(GuardedUbatch(512, 9, 3, true), stars::kGuardedUbatch);
  EXPECT_EQ(GuardedUbatch(16, 9, 3, true), 16);
  // The same on the CPU, and power-of-two groups on a GPU (1B llama: 32 over 8), are not.
  EXPECT_EQ(GuardedUbatch(512, 9, 3, false), 512);
  EXPECT_EQ(GuardedUbatch(512, 32, 8, true), 512);
  EXPECT_EQ(GuardedUbatch(512, 16, 16, true), 512);
  EXPECT_FALSE(stars::UbatchGuardApplies(32, 4, true));
  EXPECT_TRUE(stars::UbatchGuardApplies(12, 4, true));  // groups of 3 again
  EXPECT_TRUE(stars::UbatchGuardApplies(10, 4, true));  // uneven groups: guarded
}

TEST(Params, SamplingNames) {
  EXPECT_EQ(stars::ParseSampling("backend"), stars::Sampling::kBackend);
  EXPECT_EQ(std::string(stars::SamplingName(stars::ParseSampling("auto"))), "auto");
  EXPECT_TRUE(Throws([] { stars::ParseSampling("gpu"); }, "sampling must be one of"));
  stars::GenerationParams params;
  params.sampling.typical_p = 0.0f;
  EXPECT_TRUE(Throws([&] { params.Validate(true); }, "typical_p"));
}

TEST(Entropy, OfUniformPeakedAndMaskedRows) {
  const float uniform[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  EXPECT_NEAR(stars::Entropy(uniform, 4), std::log(4.0), 1e-12);
  const float inf = std::numeric_limits<float>::infinity();
  const float masked[4] = {1.0f, -inf, -inf, 1.0f};  // two tokens left, evenly
  EXPECT_NEAR(stars::Entropy(masked, 4), std::log(2.0), 1e-12);
  const float one[3] = {3.0f, -inf, -inf};
  EXPECT_NEAR(stars::Entropy(one, 3), 0.0, 1e-12);
  const float peaked[2] = {0.0f, static_cast<float>(std::log(3.0))};  // p = 1/4, 3/4
  EXPECT_NEAR(stars::Entropy(peaked, 2), -(0.25 * std::log(0.25) + 0.75 * std::log(0.75)), 1e-6);
}

TEST(TokenLogprobs, LogSoftmaxAndTopAlternatives) {
  const float logits[] = {1.0f, 3.0f, 3.0f, -2.0f};
  double z = 0.0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  const stars::LogprobsOf lp = stars::TokenLogprobs(logits, 4, 0, 3);
  EXPECT_LT(std::fabs(lp.logprob - (1.0 - std::log(z))), 1e-12);
  // Likeliest first; a tie keeps the lower id first.
  EXPECT_TRUE(lp.top.size() == 3 && lp.top[0].first == 1 && lp.top[1].first == 2 &&
              lp.top[2].first == 0);
  EXPECT_LT(std::fabs(lp.top[2].second - lp.logprob), 1e-12);
  EXPECT_TRUE(stars::TokenLogprobs(logits, 4, 3, 0).top.empty());
  EXPECT_EQ(stars::TokenLogprobs(logits, 4, 3, 9).top.size(), 4);  // at most the vocabulary
  // A row far from 0 stays exact: the sum is taken about the maximum.
  const float big[] = {1000.0f, 1000.0f};
  EXPECT_LT(std::fabs(stars::TokenLogprobs(big, 2, 1, 0).logprob - std::log(0.5)), 1e-12);
}

TEST(ParamSpec, SetParseFormatAndClassify) {
  // Every default is the struct's own, and passes its own checks.
  for (const stars::ParamSpec& spec : stars::ParamSpecs()) stars::CheckParam(spec, spec.Default());
  stars::Settings settings;
  stars::SetParam(settings, "segment_tokens", int64_t{8});
  EXPECT_EQ(settings.params.segment_tokens, 8);
  EXPECT_TRUE(Throws([&] { stars::SetParam(settings, "segment_tokens", int64_t{0}); },
                     "segment_tokens must be >= 1, got 0"));
  EXPECT_TRUE(Throws([&] { stars::SetParam(settings, "top_p", 0.0); }, "top_p must be in (0, 1]"));
  EXPECT_TRUE(Throws([&] { stars::SetParam(settings, "max_tokens", int64_t{1} << 40); }, "32-bit"));
  EXPECT_TRUE(Throws([&] { stars::SetParam(settings, "bogus", int64_t{1}); }, "unknown parameter"));
  try {
    stars::SetParam(settings, "kv_type", std::string("q4"));
    ADD_FAILURE() << "kv_type \"q4\" was accepted";
  } catch (const stars::ParameterError& e) {
    EXPECT_EQ(e.param(), "kv_type");
  }
  const stars::ParamSpec& threshold = stars::FindParam("threshold");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(stars::ParseParamText(threshold, "auto")));
  EXPECT_EQ(std::get<double>(stars::ParseParamText(threshold, "-0.5")), -0.5);
  EXPECT_TRUE(Throws([&] { stars::ParseParamText(threshold, "high"); }, "invalid float value"));
  EXPECT_EQ(stars::FormatParamValue(stars::FindParam("temperature"),
                                    stars::FindParam("temperature").Default()),
            "0.8");
  EXPECT_EQ(stars::FormatParamValue(stars::FindParam("seed"), std::monostate{}), "random");
  // The reward's options follow the engine's.
  settings.engine.kv_type = stars::KvType::kF32;
  EXPECT_EQ(stars::RewardOptionsOf(settings).kv_type, stars::KvType::kF32);
  EXPECT_EQ(std::string(stars::ClassifyError(stars::QueueFullError("x")).name), "QueueFullError");
  EXPECT_EQ(stars::ClassifyError(stars::ModelNotFoundError("x")).exit_code, 2);
  EXPECT_EQ(stars::ClassifyError(std::runtime_error("x")).http_status, 500);
}

}  // namespace

TEST(Admission, PeakSequencesAndCells) {
  EXPECT_EQ(stars::SequencesPerPrompt(stars::Mode::kPlain, 4), 2);
  EXPECT_EQ(stars::SequencesPerPrompt(stars::Mode::kBestOfN, 4), 5);
  EXPECT_EQ(stars::SequencesPerPrompt(stars::Mode::kStars, 4), 6);  // trunk, round, kept best
  stars::GenerationParams params;
  params.max_tokens = 100;
  params.segment_tokens = 16;
  params.candidates = 4;
  // Isolated: a stream per sequence, the longest holds the prompt and the response.
  EXPECT_EQ(stars::CellsPerPrompt(params, 10, stars::KvLayout::kIsolated), 110);
  // Shared: the trunk plus N + 1 segments (a round and the kept best).
  EXPECT_EQ(stars::CellsPerPrompt(params, 10, stars::KvLayout::kShared), 110 + 5 * 16);
  params.mode = stars::Mode::kBestOfN;
  EXPECT_EQ(stars::CellsPerPrompt(params, 10, stars::KvLayout::kShared), 10 + 4 * 100);
  params.mode = stars::Mode::kStars;
  params.max_tokens = 8;  // no segment is longer than the response
  EXPECT_EQ(stars::CellsPerPrompt(params, 10, stars::KvLayout::kShared), 18 + 5 * 8);
}

TEST(Admission, ContextSize) {
  stars::ContextDemand demand;
  demand.n_ctx = 4096;
  demand.max_sequences = 256;
  demand.wanted_seqs = 13;
  demand.longest_cells = 300;
  // Isolated: ids by eights, a stream from 256 cells by doubling.
  stars::ContextSize size = stars::SizeContext(demand);
  EXPECT_EQ(size.n_seq, 16);
  EXPECT_EQ(size.n_cells, 512);
  demand.longest_cells = 100000;  // at most n_ctx
  EXPECT_EQ(stars::SizeContext(demand).n_cells, 4096);
  // Never smaller than the context it has; never past llama.cpp's limit.
  demand.have = {64, 1024};
  demand.longest_cells = 10;
  size = stars::SizeContext(demand);
  EXPECT_EQ(size.n_seq, 64);
  EXPECT_EQ(size.n_cells, 1024);
  demand.wanted_seqs = 1000;
  EXPECT_EQ(stars::SizeContext(demand).n_seq, 256);
  // Shared: ids by doubling from n_seq_max (at least 8), cells are n_ctx.
  demand = {};
  demand.layout = stars::KvLayout::kShared;
  demand.n_ctx = 2048;
  demand.max_sequences = 256;
  demand.wanted_seqs = 20;
  size = stars::SizeContext(demand);
  EXPECT_EQ(size.n_seq, 32);
  EXPECT_EQ(size.n_cells, 2048);
  demand.n_seq_max = 64;
  EXPECT_EQ(stars::SizeContext(demand).n_seq, 64);
}
