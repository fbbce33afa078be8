// The KV-cached rewards (a yes/no judge and a causal reward head, both on tiny F32 models) in
// both KV layouts: scores through the Begin/Score/Commit protocol equal from-scratch scores,
// Commit adopts a scored fork without decoding again, and a context too small for every trunk
// evicts and rebuilds them (or, isolated, is made again larger).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "stars/errors.h"
#include "stars/model.h"
#include "stars/reward.h"
#include "stars/rewards.h"
#include "tiny_models.h"

namespace stars_test {
namespace {

using stars::KvLayout;

enum class Kind { kJudge, kCausal };

struct Case {
  Kind kind;
  KvLayout layout;
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return std::string(info.param.kind == Kind::kJudge ? "Judge" : "Causal") + "_" +
         LayoutName(info.param.layout);
}

// F32 weights: incremental and from-scratch scores agree to about 1e-5 (tests/test_*_reward.py).
constexpr double kTolerance = 1e-4;
// A trunk rebuilt in other batch shapes moves a score by up to about 1e-3 with the F16 KV cache.
constexpr double kRebuiltTolerance = 1e-3;

const char* const kPrompt = "Once upon a time";

// One row: a prompt id, the accepted response and a candidate segment, as text and policy ids.
struct Row {
  int32_t prompt;
  std::string trunk;
  std::string segment;
  std::vector<int32_t> trunk_tokens;
  std::vector<int32_t> segment_tokens;
};

std::vector<stars::RewardRow> Views(const std::vector<Row>& rows) {
  std::vector<stars::RewardRow> views;
  for (const Row& row : rows) {
    stars::RewardRow view;
    view.prompt = row.prompt;
    view.trunk_text = row.trunk;
    view.segment_text = row.segment;
    view.trunk_tokens = row.trunk_tokens.data();
    view.n_trunk_tokens = static_cast<int32_t>(row.trunk_tokens.size());
    view.segment_tokens = row.segment_tokens.data();
    view.n_segment_tokens = static_cast<int32_t>(row.segment_tokens.size());
    views.push_back(view);
  }
  return views;
}

class KvCachedRewardTest : public ::testing::TestWithParam<Case> {
 protected:
  bool isolated() const { return GetParam().layout == KvLayout::kIsolated; }

  std::shared_ptr<stars::KvCachedReward> Make(const std::shared_ptr<stars::Model>& policy,
                                              int32_t n_ctx = 8192) {
    if (GetParam().kind == Kind::kJudge) {
      stars::JudgeOptions options;
      options.yes = " yes";  // one token each of the tiny vocabulary
      options.no = " no";
      options.n_ctx = n_ctx;
      options.kv_layout = GetParam().layout;
      options.n_threads = kThreads;
      return stars::MakeJudgeReward(TinyLlama(), policy, options);
    }
    static const std::string path = TinyModelPath("tiny-causal-rm.gguf");
    static const std::shared_ptr<stars::Model> model = stars::Model::Load(path, 0);
    stars::CausalOptions options;
    options.n_ctx = n_ctx;
    options.kv_layout = GetParam().layout;
    options.n_threads = kThreads;
    return stars::MakeCausalReward(model, path, policy, options);
  }

  // The from-scratch score of each row, from `reference` (a reward of its own, so that its
  // scratch sequences never disturb the cached trunks under test).
  std::vector<double> Scratch(stars::KvCachedReward& reference, const std::vector<Row>& rows,
                              const std::vector<std::string>& prompts, bool tokens) {
    std::vector<double> scores;
    for (const Row& row : rows) {
      if (tokens) {
        std::vector<int32_t> all = row.trunk_tokens;
        all.insert(all.end(), row.segment_tokens.begin(), row.segment_tokens.end());
        scores.push_back(reference.ScorePolicyTokens(prompts.at(row.prompt), all));
      } else {
        scores.push_back(
            reference.ScoreTexts({prompts.at(row.prompt)}, {row.trunk + row.segment}).at(0));
      }
    }
    return scores;
  }
};

TEST_P(KvCachedRewardTest, TextRowsEqualFromScratchAcrossRounds) {
  const auto reward = Make(nullptr);
  const auto reference = Make(nullptr);
  EXPECT_FALSE(reward->shares_vocabulary());
  EXPECT_THROW(reward->ScorePolicyTokens(kPrompt, {1, 2}), stars::ParameterError);
  const std::vector<std::string> prompts = {kPrompt, "The cat sat"};
  std::vector<std::string> trunks(2);
  reward->Begin(0, prompts[0]);
  reward->Begin(1, prompts[1]);
  const std::vector<std::vector<std::string>> rounds = {
      {" there was", "", " a dog"}, {" who sat", " on the mat"}, {" and ran", " away"}};
  for (size_t round = 0; round < rounds.size(); ++round) {
    // Rows of both prompts interleaved: scores must come back in row order.
    std::vector<Row> rows;
    for (const std::string& segment : rounds[round]) {
      for (int32_t p = 0; p < 2; ++p) rows.push_back({p, trunks[p], segment, {}, {}});
    }
    const std::vector<double> expected = Scratch(*reference, rows, prompts, false);
    std::vector<double> scores;
    reward->Score(Views(rows), &scores);
    ASSERT_EQ(scores.size(), rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      EXPECT_NEAR(scores[r], expected[r], kTolerance)
          << "round " << round << ", prompt " << rows[r].prompt << ", segment '" << rows[r].segment
          << "'";
    }
    // Prompt 0 accepts a scored candidate (its fork becomes the trunk); prompt 1 text that was
    // not scored (the trunk is extended).
    const std::string accepted[2] = {rounds[round][0], " then"};
    for (int32_t p = 0; p < 2; ++p) {
      reward->Commit(p, nullptr, 0, accepted[p]);
      trunks[p] += accepted[p];
    }
  }
  // r(x, y) of the whole accepted responses, scored after the last Commit.
  std::vector<Row> last = {{0, trunks[0], "", {}, {}}, {1, trunks[1], "", {}, {}}};
  std::vector<double> scores;
  reward->Score(Views(last), &scores);
  const std::vector<double> expected = Scratch(*reference, last, prompts, false);
  EXPECT_NEAR(scores[0], expected[0], kTolerance);
  EXPECT_NEAR(scores[1], expected[1], kTolerance);
  reward->Finish(0);
  reward->Finish(1);
}

TEST_P(KvCachedRewardTest, PolicyTokensCostTheirSegmentAndTheSuffix) {
  const std::shared_ptr<stars::Model> policy = TinyLlama();
  const auto reward = Make(policy);
  const auto reference = Make(policy);
  ASSERT_TRUE(reward->shares_vocabulary());
  const std::vector<std::string> prompts = {kPrompt};
  const int64_t n_prefix = reward->n_prefix_tokens(kPrompt);
  const int64_t n_suffix = reward->n_suffix_tokens();
  EXPECT_GT(n_prefix, 0);
  reward->Begin(0, kPrompt);
  EXPECT_EQ(reward->TokensDecoded(0), 0);

  std::string trunk;
  std::vector<int32_t> trunk_tokens;
  int64_t decoded = n_prefix;  // the trunk, decoded once at the first Score
  const std::vector<std::vector<std::string>> rounds = {
      {" there was", " a dog who", ""}, {" sat on", " the"}, {" mat", " happy", " red"}};
  for (size_t round = 0; round < rounds.size(); ++round) {
    std::vector<Row> rows;
    for (const std::string& segment : rounds[round]) {
      rows.push_back({0, trunk, segment, trunk_tokens, Tokens(*policy, segment)});
      decoded += static_cast<int64_t>(rows.back().segment_tokens.size()) + n_suffix;
    }
    const std::vector<double> expected = Scratch(*reference, rows, prompts, true);
    std::vector<double> scores;
    reward->Score(Views(rows), &scores);
    for (size_t r = 0; r < rows.size(); ++r) {
      EXPECT_NEAR(scores[r], expected[r], kTolerance)
          << "round " << round << ", segment '" << rows[r].segment << "'";
    }
    EXPECT_EQ(reward->TokensDecoded(0), decoded) << "round " << round;
    // Rounds 0 and 2 accept a scored candidate: its fork is adopted, nothing is decoded.
    // Round 1 accepts tokens not scored: the trunk decodes them.
    std::vector<int32_t> accepted = rows[0].segment_tokens;
    std::string text = rows[0].segment;
    if (round == 1) {
      text = " and";
      accepted = Tokens(*policy, text);
      decoded += static_cast<int64_t>(accepted.size());
    }
    reward->Commit(0, accepted.data(), static_cast<int32_t>(accepted.size()), text);
    EXPECT_EQ(reward->TokensDecoded(0), decoded) << "commit " << round;
    trunk += text;
    trunk_tokens.insert(trunk_tokens.end(), accepted.begin(), accepted.end());
  }
  reward->Finish(0);
}

TEST_P(KvCachedRewardTest, ASmallContextEvictsOrGrowsAndRebuildsTrunks) {
  const std::shared_ptr<stars::Model> policy = TinyLlama();
  const auto roomy = Make(policy);
  const auto tight = Make(policy, 256);
  const auto reference = Make(policy);
  std::vector<std::string> prompts;
  for (int i = 0; i < 8; ++i) {
    prompts.push_back(std::string(kPrompt) + ", in town number " + std::to_string(i) +
                      ", there lived");
  }
  // Prompt 0 alone first, so that its trunk is live when the other seven arrive.
  tight->Begin(0, prompts[0]);
  roomy->Begin(0, prompts[0]);
  std::vector<std::string> trunks(8);
  std::vector<std::vector<int32_t>> trunk_tokens(8);
  const std::vector<std::string> segments = {" a cat", " the dog who", " old"};
  for (int round = 0; round < 3; ++round) {
    const int32_t n_prompts = round == 0 ? 1 : 8;
    if (round == 1) {
      for (int32_t p = 1; p < 8; ++p) {
        tight->Begin(p, prompts[p]);
        roomy->Begin(p, prompts[p]);
      }
    }
    std::vector<Row> rows;
    for (int32_t p = 0; p < n_prompts; ++p) {
      for (const std::string& segment : segments) {
        rows.push_back({p, trunks[p], segment, trunk_tokens[p], Tokens(*policy, segment)});
      }
    }
    const std::vector<double> expected = Scratch(*reference, rows, prompts, true);
    std::vector<double> small, wide;
    tight->Score(Views(rows), &small);
    roomy->Score(Views(rows), &wide);
    for (size_t r = 0; r < rows.size(); ++r) {
      EXPECT_NEAR(small[r], expected[r], kRebuiltTolerance) << "round " << round << " row " << r;
      EXPECT_NEAR(wide[r], expected[r], kRebuiltTolerance) << "round " << round << " row " << r;
    }
    for (int32_t p = 0; p < n_prompts; ++p) {
      const std::vector<int32_t>& accepted = rows[static_cast<size_t>(p) * 3 + 1].segment_tokens;
      tight->Commit(p, accepted.data(), static_cast<int32_t>(accepted.size()), segments[1]);
      roomy->Commit(p, accepted.data(), static_cast<int32_t>(accepted.size()), segments[1]);
      trunks[p] += segments[1];
      trunk_tokens[p].insert(trunk_tokens[p].end(), accepted.begin(), accepted.end());
    }
  }
  int64_t tight_decoded = 0, roomy_decoded = 0;
  for (int32_t p = 0; p < 8; ++p) {
    tight_decoded += tight->TokensDecoded(p);
    roomy_decoded += roomy->TokensDecoded(p);
  }
  if (isolated()) {
    // 24 rows and 8 trunks outgrow the 8 streams the context starts with: it is made again
    // larger, and prompt 0's trunk (prefix and accepted response) is decoded again.
    const int64_t n_prefix = tight->n_prefix_tokens(prompts[0]);
    const int64_t n_suffix = tight->n_suffix_tokens();
    int64_t rows_cost = 0;
    for (const std::string& segment : segments) {
      rows_cost += static_cast<int64_t>(Tokens(*policy, segment).size()) + n_suffix;
    }
    const int64_t accepted = static_cast<int64_t>(Tokens(*policy, segments[1]).size());
    EXPECT_EQ(tight->TokensDecoded(0),
              n_prefix + rows_cost + (n_prefix + accepted) + 2 * rows_cost);
    EXPECT_EQ(tight_decoded, roomy_decoded);  // both start with 8 streams of 256 cells
  } else {
    // Eight trunks and their forks need far more than 256 cells: trunks are evicted and
    // rebuilt, which the small context pays for in tokens decoded again.
    EXPECT_GT(tight_decoded, roomy_decoded);
  }
}

TEST_P(KvCachedRewardTest, ARowLongerThanTheContextThrowsAndTheRewardGoesOn) {
  const auto tight = Make(nullptr, 256);
  const auto reference = Make(nullptr);
  tight->Begin(0, kPrompt);
  std::string longer;
  for (int i = 0; i < 60; ++i) longer += " the cat sat on the mat";
  std::vector<double> scores;
  try {
    tight->Score(Views({{0, "", longer, {}, {}}}), &scores);
    ADD_FAILURE() << "a row of " << longer.size() << " bytes in 256 cells";
  } catch (const stars::ContextLengthError& e) {
    EXPECT_NE(std::string(e.what()).find("n_ctx=256"), std::string::npos) << e.what();
  }
  const std::vector<Row> rows = {{0, "", " a cat", {}, {}}};
  tight->Score(Views(rows), &scores);
  EXPECT_NEAR(scores.at(0), Scratch(*reference, rows, {kPrompt}, false).at(0), kTolerance);
}

INSTANTIATE_TEST_SUITE_P(Rewards, KvCachedRewardTest,
                         ::testing::Values(Case{Kind::kJudge, KvLayout::kShared},
                                           Case{Kind::kJudge, KvLayout::kIsolated},
                                           Case{Kind::kCausal, KvLayout::kShared},
                                           Case{Kind::kCausal, KvLayout::kIsolated}),
                         CaseName);

}  // namespace
}  // namespace stars_test
