// Unit tests of the acceptance rule, threshold schedule, segment search, response text
// bookkeeping and parameter validation, on plain numbers.
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "algorithm/acceptance.h"
#include "algorithm/response_text.h"
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
  stars::AcceptanceRule rule(stars::Acceptance::kHard, 0.7, 1);
  CHECK(rule.Accept(1.0, 1.0));
  CHECK(rule.Accept(1.5, 1.0));
  CHECK(!rule.Accept(0.999, 1.0));
}

void TestSoftFrequency() {
  const double p = stars::SoftAcceptanceProbability(0.0, 0.5, 0.7);
  const int draws = 20000;
  stars::AcceptanceRule rule(stars::Acceptance::kSoft, 0.7, 42);
  int accepted = 0;
  for (int i = 0; i < draws; ++i) accepted += rule.Accept(0.0, 0.5) ? 1 : 0;
  const double sigma = std::sqrt(p * (1 - p) / draws);
  CHECK_NEAR(static_cast<double>(accepted) / draws, p, 4 * sigma);
  // The same seed gives the same decisions.
  stars::AcceptanceRule a(stars::Acceptance::kSoft, 0.7, 7), b(stars::Acceptance::kSoft, 0.7, 7);
  bool same = true;
  for (int i = 0; i < 100; ++i) same = same && (a.Accept(0.0, 0.5) == b.Accept(0.0, 0.5));
  CHECK(same);
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

void TestSearchAcceptStopsConsidering() {
  stars::SegmentSearch search(4, 16);
  stars::AcceptanceRule hard(stars::Acceptance::kHard, 0.7, 0);
  CHECK(search.NextRoundSize() == 4);
  const auto d = search.Consider({0.1, 0.5, 2.0, 3.0}, {1, 1, 1, 1}, hard);
  CHECK(d.outcome == stars::SegmentSearch::Outcome::kAccepted);
  CHECK(d.chosen_slot == 2);
  CHECK(search.attempts() == 3);
  CHECK(search.rewards().size() == 3);
}

void TestSearchFallbackAcrossRounds() {
  // N = 4, M = 6: rounds of 4 then 2; the best (0.9) is in round one.
  stars::SegmentSearch search(4, 6);
  stars::AcceptanceRule hard(stars::Acceptance::kHard, 0.7, 0);
  auto d = search.Consider({0.1, 0.9, 0.3, 0.9}, {1, 1.5, 1, 1}, hard);
  CHECK(d.outcome == stars::SegmentSearch::Outcome::kContinue);
  CHECK(d.new_best_slot == 1);  // ties keep the earliest
  CHECK(search.NextRoundSize() == 2);
  d = search.Consider({0.2, 0.4}, {1, 1}, hard);
  CHECK(d.outcome == stars::SegmentSearch::Outcome::kFallback);
  CHECK(d.chosen_slot == -1);  // the kept best of an earlier round
  CHECK(d.new_best_slot == -1);
  CHECK_NEAR(d.reward, 0.9, 1e-12);
  CHECK_NEAR(d.threshold, 1.5, 1e-12);
  CHECK(search.attempts() == 6);
}

void TestSearchFallbackInLastRound() {
  stars::SegmentSearch search(2, 4);
  stars::AcceptanceRule hard(stars::Acceptance::kHard, 0.7, 0);
  search.Consider({0.1, 0.2}, {1, 1}, hard);
  const auto d = search.Consider({0.5, 0.3}, {1, 1}, hard);
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
  CHECK(stars::FindStop("hello END there", 0, stop) == 6);
  CHECK(stars::FindStop("hello EN", 0, stop) == std::string::npos);
  CHECK(stars::FindStop("hello END", 8, stop) == 6);  // a match ending in the new text
  CHECK(stars::FindStop("END and more", 9, stop) == std::string::npos);  // searched already
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
  auto plain = p;
  plain.mode = stars::Mode::kPlain;
  plain.Validate(false);
}

}  // namespace

int main() {
  TestSoftProbability();
  TestHardRule();
  TestSoftFrequency();
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
