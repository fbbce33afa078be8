// Unit tests of the acceptance rule, threshold schedule, segment search, response text
// bookkeeping and parameter validation, on plain numbers.
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "algorithm/acceptance.h"
#include "algorithm/attempt_key.h"
#include "algorithm/response_text.h"
#include "algorithm/round_cost.h"
#include "algorithm/round_width.h"
#include "algorithm/segment_search.h"
#include "algorithm/threshold_schedule.h"
#include "stars/errors.h"
#include "stars/params.h"

namespace {

int failures = 0;

void Check(bool ok, const char* what, int line) {
  if (!ok) {
    std::printf("FAILED line %d: %s\n", line, what);
    ++failures;
  }
}
#define CHECK(cond) Check((cond), #cond, __LINE__)
#define CHECK_NEAR(a, b, tol) Check(std::fabs((a) - (b)) <= (tol), #a " ~ " #b, __LINE__)

bool Throws(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
  } catch (const stars::ParameterError& e) {
    return std::string(e.what()).find(needle) != std::string::npos;
  }
  return false;
}

void TestSoftProbability() {
  CHECK_NEAR(stars::SoftAcceptanceProbability(2.0, 1.0, 0.7), 1.0, 1e-12);
  CHECK_NEAR(stars::SoftAcceptanceProbability(1.0, 1.0, 0.7), 1.0, 1e-12);
  CHECK_NEAR(stars::SoftAcceptanceProbability(0.3, 1.0, 0.7), std::exp(-1.0), 1e-12);
}

void TestHardRule() {
  const stars::AcceptanceRule rule(stars::Acceptance::kHard, 0.7);
  CHECK(rule.Accept(1.0, 1.0, 0.99));
  CHECK(rule.Accept(1.5, 1.0, 0.99));
  CHECK(!rule.Accept(0.999, 1.0, 0.0));
}

void TestSoftFrequency() {
  // The attempt keys' draws are uniform: the acceptance frequency matches the probability.
  const double p = stars::SoftAcceptanceProbability(0.0, 0.5, 0.7);
  const int draws = 20000;
  const stars::AcceptanceRule rule(stars::Acceptance::kSoft, 0.7);
  int accepted = 0;
  for (int i = 0; i < draws; ++i) {
    const uint64_t key = stars::AttemptKey(42, 7, static_cast<uint64_t>(i / 16), i % 16);
    accepted += rule.Accept(0.0, 0.5, stars::AcceptanceDraw(key)) ? 1 : 0;
  }
  const double sigma = std::sqrt(p * (1 - p) / draws);
  CHECK_NEAR(static_cast<double>(accepted) / draws, p, 4 * sigma);
  // u < P(accept): a draw just under the probability accepts, one at it does not.
  CHECK(rule.Accept(0.0, 0.5, p - 1e-9));
  CHECK(!rule.Accept(0.0, 0.5, p));
}

void TestAttemptKeys() {
  // Every (seed, prompt, segment, attempt) gets its own key, the same each time.
  std::set<uint64_t> keys;
  for (uint64_t seed = 0; seed < 3; ++seed)
    for (uint64_t prompt = 0; prompt < 3; ++prompt)
      for (uint64_t segment = 0; segment < 8; ++segment)
        for (uint64_t attempt = 0; attempt < 8; ++attempt)
          keys.insert(stars::AttemptKey(seed, prompt, segment, attempt));
  CHECK(keys.size() == 3 * 3 * 8 * 8);
  CHECK(stars::AttemptKey(1, 2, 3, 4) == stars::AttemptKey(1, 2, 3, 4));
  double lo = 1, hi = 0;
  for (uint64_t k = 0; k < 1000; ++k) {
    const double u = stars::AcceptanceDraw(stars::AttemptKey(9, 9, 0, k));
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  CHECK(lo >= 0.0 && lo < 0.01 && hi < 1.0 && hi > 0.99);
  // Prompt keys: tokens and occurrence, or an explicit id; none of them collide here.
  const std::vector<int32_t> a = {1, 2, 3}, b = {1, 2, 4};
  CHECK(stars::PromptKeyOfTokens(a, 0) == stars::PromptKeyOfTokens(a, 0));
  CHECK(stars::PromptKeyOfTokens(a, 0) != stars::PromptKeyOfTokens(a, 1));
  CHECK(stars::PromptKeyOfTokens(a, 0) != stars::PromptKeyOfTokens(b, 0));
  CHECK(stars::PromptKeyOfId("17") == stars::PromptKeyOfId("17"));
  CHECK(stars::PromptKeyOfId("17") != stars::PromptKeyOfId("18"));
  CHECK(stars::PromptKeyOfId("") != stars::PromptKeyOfTokens({}, 0));
}

void TestRoundWidth() {
  CHECK_NEAR(stars::EstimateAcceptance(0, 0), 1.0, 0);
  CHECK_NEAR(stars::EstimateAcceptance(1, 4), 0.25, 1e-12);
  // A CPU-like round: 4 sequences cost 2x one.
  auto cpu = [](int32_t n) { return 1.0 + (n - 1) / 3.0; };
  // Certain acceptance: one candidate, whatever the cost.
  CHECK(stars::ChooseRoundWidth(4, 16, 1.0, cpu) == 1);
  CHECK(stars::ChooseRoundWidth(4, 16, 1.0, [](int32_t) { return 1.0; }) == 1);  // a tie
  // E(1) = 1 / p; E(4) = 2 / (1 - (1 - p)^4) without the fallback: wide rounds win at p = 1/4.
  CHECK_NEAR(stars::ExpectedSecondsToSegment(1, 1000, 0.25, cpu), 4.0, 1e-9);
  CHECK_NEAR(stars::ExpectedSecondsToSegment(4, 1000, 0.25, cpu), 2.0 / (1 - std::pow(0.75, 4)),
             1e-9);
  CHECK(stars::ChooseRoundWidth(4, 16, 0.25, cpu) == 3);  // E(3) = 2.88 < E(4) = 2.90
  CHECK(stars::ChooseRoundWidth(4, 16, 0.9, cpu) == 1);
  // A GPU-like round (4 cost 1.35x one) widens sooner than a CPU-like one.
  auto gpu = [](int32_t n) { return 1.0 + 0.35 * (n - 1) / 3.0; };
  CHECK(stars::ChooseRoundWidth(4, 16, 0.6, gpu) > stars::ChooseRoundWidth(4, 16, 0.6, cpu));
  // Never wider than allowed; with nothing ever accepted, the cap is reached in the fewest
  // rounds that cost least.
  CHECK(stars::ChooseRoundWidth(2, 16, 0.0, cpu) == 2);
  // The fallback bounds the expectation: with 3 attempts left at p = 0, width 1 costs 3 rounds.
  CHECK_NEAR(stars::ExpectedSecondsToSegment(1, 3, 0.0, cpu), 3.0, 1e-12);
  CHECK_NEAR(stars::ExpectedSecondsToSegment(2, 3, 0.0, cpu), cpu(2) + cpu(1), 1e-12);
}

void TestRoundCost() {
  stars::RoundCostModel costs;
  // Nothing measured: the prior shape, never decreasing.
  CHECK(costs.StepSeconds(0) == 0.0);
  CHECK(costs.StepSeconds(4) > costs.StepSeconds(1));
  costs.RecordStep(1, 0.010);
  costs.RecordStep(4, 0.020);
  CHECK_NEAR(costs.StepSeconds(1), 0.010, 1e-12);
  CHECK_NEAR(costs.StepSeconds(2), 0.010 + 0.010 / 3, 1e-12);            // interpolated
  CHECK_NEAR(costs.StepSeconds(8), 0.020 * (1 + 7 / 3.0) / 2.0, 1e-12);  // prior shape beyond
  // A noisy measurement never makes more sequences look cheaper.
  costs.RecordStep(6, 0.001);
  CHECK(costs.StepSeconds(6) >= costs.StepSeconds(4));
  // Moving average: a new value moves the estimate a quarter of the way.
  costs.RecordStep(1, 0.014);
  CHECK_NEAR(costs.StepSeconds(1), 0.011, 1e-12);
  costs.RecordReward(10, 0.05);
  CHECK_NEAR(costs.RewardSecondsPerRow(), 0.005, 1e-12);
  // A round: its steps at the marginal step cost, plus its rows.
  CHECK_NEAR(costs.RoundSeconds(0, 4, 15), 15 * 0.020 + 4 * 0.005, 1e-12);
  CHECK_NEAR(costs.RoundSeconds(3, 1, 15), 15 * (0.020 - costs.StepSeconds(3)) + 0.005, 1e-12);
}

void TestSchedule() {
  // r_x = 0, tau* = 2, alpha = 0.5: r0 = 1, tau(t) = 1 + t / T, reaching 2 at T.
  stars::ThresholdSchedule schedule(0.0, 2.0, 0.5, 100);
  CHECK_NEAR(schedule.start(), 1.0, 1e-12);
  CHECK_NEAR(schedule.At(0), 1.0, 1e-12);
  CHECK_NEAR(schedule.At(50), 1.5, 1e-12);
  CHECK_NEAR(schedule.At(100), 2.0, 1e-12);
  CHECK_NEAR(schedule.At(150), 2.0, 1e-12);
  // r(x, empty) above tau*: r0 > tau*, and the min keeps tau at tau*.
  stars::ThresholdSchedule above(4.0, 2.0, 0.5, 100);
  CHECK_NEAR(above.At(0), 2.0, 1e-12);
}

void TestQuantile() {
  CHECK_NEAR(stars::Quantile({5, 1, 4, 2, 3}, 0.8), 4.2, 1e-12);  // numpy.quantile
  CHECK_NEAR(stars::Quantile({1, 2}, 0.8), 1.8, 1e-12);
  CHECK_NEAR(stars::Quantile({3}, 0.8), 3.0, 1e-12);
}

const std::vector<double> kNoDraws = {0, 0, 0, 0};

void TestSearchAcceptStopsConsidering() {
  stars::SegmentSearch search(16);
  const stars::AcceptanceRule hard(stars::Acceptance::kHard, 0.7);
  CHECK(search.attempts_left() == 16);
  const auto d = search.Consider({0.1, 0.5, 2.0, 3.0}, {1, 1, 1, 1}, kNoDraws, hard);
  CHECK(d.outcome == stars::SegmentSearch::Outcome::kAccepted);
  CHECK(d.chosen_slot == 2);
  CHECK(d.considered == 3);  // slot 3 is waste
  CHECK(search.attempts() == 3);
  CHECK(search.rewards().size() == 3);
}

void TestSearchIsWidthFree() {
  // The same attempts in rounds of 1, 2 and 4 give the same decision at the same attempt.
  const std::vector<double> rewards = {0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 0.2, 0.1};
  const std::vector<double> draws = {0.9, 0.8, 0.7, 0.9, 0.95, 0.1, 0.5, 0.5};
  const stars::AcceptanceRule soft(stars::Acceptance::kSoft, 0.3);
  for (size_t width : {1, 2, 4}) {
    stars::SegmentSearch search(8);
    stars::SegmentSearch::Decision d{};
    for (size_t at = 0; at < rewards.size(); at += width) {
      const std::vector<double> r(rewards.begin() + at, rewards.begin() + at + width);
      const std::vector<double> u(draws.begin() + at, draws.begin() + at + width);
      d = search.Consider(r, std::vector<double>(width, 1.0), u, soft);
      if (d.outcome != stars::SegmentSearch::Outcome::kContinue) break;
    }
    // exp((0.9 - 1) / 0.3) = 0.72 > 0.1: attempt 6 (index 5) is the first accepted.
    CHECK(d.outcome == stars::SegmentSearch::Outcome::kAccepted);
    CHECK(search.attempts() == 6);
    CHECK_NEAR(d.reward, 0.9, 0);
  }
}

void TestSearchFallbackAcrossRounds() {
  // M = 6: rounds of 4 then 2; the best (0.9) is in round one.
  stars::SegmentSearch search(6);
  const stars::AcceptanceRule hard(stars::Acceptance::kHard, 0.7);
  auto d = search.Consider({0.1, 0.9, 0.3, 0.9}, {1, 1.5, 1, 1}, kNoDraws, hard);
  CHECK(d.outcome == stars::SegmentSearch::Outcome::kContinue);
  CHECK(d.new_best_slot == 1);  // ties keep the earliest
  CHECK(search.attempts_left() == 2);
  d = search.Consider({0.2, 0.4}, {1, 1}, kNoDraws, hard);
  CHECK(d.outcome == stars::SegmentSearch::Outcome::kFallback);
  CHECK(d.chosen_slot == -1);  // the kept best of an earlier round
  CHECK(d.new_best_slot == -1);
  CHECK_NEAR(d.reward, 0.9, 1e-12);
  CHECK_NEAR(d.threshold, 1.5, 1e-12);
  CHECK(search.attempts() == 6);
}

void TestSearchFallbackInLastRound() {
  stars::SegmentSearch search(4);
  const stars::AcceptanceRule hard(stars::Acceptance::kHard, 0.7);
  search.Consider({0.1, 0.2}, {1, 1}, kNoDraws, hard);
  const auto d = search.Consider({0.5, 0.3}, {1, 1}, kNoDraws, hard);
  CHECK(d.outcome == stars::SegmentSearch::Outcome::kFallback);
  CHECK(d.chosen_slot == 0);
  CHECK(d.new_best_slot == 0);
}

void TestResponseText() {
  CHECK(stars::CompleteUtf8Prefix("abc") == 3);
  CHECK(stars::CompleteUtf8Prefix("a\xc3") == 1);             // first byte of "é"
  CHECK(stars::CompleteUtf8Prefix("a\xc3\xa9") == 3);         // whole "é"
  CHECK(stars::CompleteUtf8Prefix("a\xe2\x82") == 1);         // 2 of 3 bytes of "€"
  CHECK(stars::CompleteUtf8Prefix("\xf0\x9f\x98\x80") == 4);  // whole emoji
  const std::vector<std::string> stop = {"\n\n", "END"};
  CHECK(stars::FindStop("", "hello END there", 0, stop) == 6);
  CHECK(!stars::FindStop("", "hello EN", 0, stop));
  CHECK(stars::FindStop("", "hello END", 8, stop) == 6);  // a match ending in the new text
  CHECK(!stars::FindStop("", "END and more", 9, stop));   // searched already
  // Across the segment boundary: the trunk ends with "EN", the segment starts with "D".
  CHECK(stars::FindStop("hello EN", "D more", 0, stop) == -2);
  CHECK(stars::FindStop("hello E", "ND", 1, stop) == -1);
  CHECK(!stars::FindStop("hello E", "ND", 2, stop));      // completed earlier, searched already
  CHECK(stars::FindStop("x\n", "\nEND", 0, stop) == -1);  // the earliest of two
  CHECK(!stars::FindStop("hello EN", "d", 0, stop));
  // Held back: a suffix that may start a stop string, or a split UTF-8 character.
  CHECK(stars::ShowablePrefix("hello EN", stop) == 6);
  CHECK(stars::ShowablePrefix("hello E", stop) == 6);
  CHECK(stars::ShowablePrefix("hello\n", stop) == 5);
  CHECK(stars::ShowablePrefix("hello", stop) == 5);
  CHECK(stars::ShowablePrefix("a\xc3", {}) == 1);
}

void TestValidation() {
  stars::GenerationParams p;
  p.Validate(true);
  CHECK(Throws(
      [&] {
        auto q = p;
        q.segment_tokens = 0;
        q.Validate(true);
      },
      "segment_tokens"));
  CHECK(Throws(
      [&] {
        auto q = p;
        q.candidates = 0;
        q.Validate(true);
      },
      "candidates"));
  CHECK(Throws(
      [&] {
        auto q = p;
        q.max_attempts = 0;
        q.Validate(true);
      },
      "max_attempts"));
  CHECK(Throws(
      [&] {
        auto q = p;
        q.max_tokens = 0;
        q.Validate(true);
      },
      "max_tokens"));
  CHECK(Throws(
      [&] {
        auto q = p;
        q.sampling.temperature = -1;
        q.Validate(true);
      },
      "temperature"));
  CHECK(Throws(
      [&] {
        auto q = p;
        q.sampling.top_p = 0;
        q.Validate(true);
      },
      "top_p"));
  CHECK(Throws(
      [&] {
        auto q = p;
        q.sampling.top_p = 1.5f;
        q.Validate(true);
      },
      "top_p"));
  CHECK(Throws(
      [&] {
        auto q = p;
        q.beta = 0;
        q.Validate(true);
      },
      "beta"));
  CHECK(Throws(
      [&] {
        auto q = p;
        q.alpha = 2;
        q.Validate(true);
      },
      "alpha"));
  CHECK(Throws([&] { p.Validate(false); }, "needs a reward"));
  CHECK(Throws(
      [&] {
        auto q = p;
        q.candidates = 1;
        q.Validate(true);
      },
      "threshold='auto'"));
  CHECK(Throws([] { stars::ParseMode("beam"); }, "mode"));
  CHECK(Throws([] { stars::ParseAcceptance("maybe"); }, "acceptance"));
  CHECK(Throws([] { stars::ParseWidth("wide"); }, "width"));
  CHECK(stars::ParseWidth(stars::WidthName(stars::Width::kFixed)) == stars::Width::kFixed);
  auto plain = p;
  plain.mode = stars::Mode::kPlain;
  plain.Validate(false);
}

}  // namespace

int main() {
  TestSoftProbability();
  TestHardRule();
  TestSoftFrequency();
  TestAttemptKeys();
  TestRoundWidth();
  TestRoundCost();
  TestSearchIsWidthFree();
  TestSchedule();
  TestQuantile();
  TestSearchAcceptStopsConsidering();
  TestSearchFallbackAcrossRounds();
  TestSearchFallbackInLastRound();
  TestResponseText();
  TestValidation();
  std::printf("algorithm tests: %s\n", failures == 0 ? "all passed" : "FAILED");
  return failures == 0 ? 0 : 1;
}
