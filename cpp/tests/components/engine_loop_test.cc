// The engine loop on a fake decoder (fake_decoder.h): admission, cancellation, a raising reward,
// width changes, stop strings across segments, backend draws and cell accounting, on plain
// numbers, with no model file and no Python.
#include "engine/engine_loop.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "algorithm/admission.h"
#include "fake_decoder.h"
#include "stars/errors.h"
#include "stars/reward.h"

namespace stars::testing {
namespace {

// Counts the early letters 'a'..'e' in the response: a reward the alphabet model meets often.
class LetterReward : public Reward {
 public:
  void Begin(int32_t prompt, std::string_view text) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (static_cast<size_t>(prompt) >= texts_.size()) texts_.resize(prompt + 1);
    texts_[prompt] = std::string(text);
  }
  void Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) override {
    ++calls;
    bool several = false;
    for (const RewardRow& row : rows) {
      several = several || row.prompt != rows.front().prompt;
      if (texts_.at(row.prompt) == "boom") throw RewardError("boom rows raise");
    }
    if (fail_joint_calls && several) throw RewardError("too many prompts in one call");
    scores->clear();
    for (const RewardRow& row : rows) {
      const std::string text = row.ResponseText();
      double early = 0;
      for (char c : text) early += c >= 'a' && c <= 'e' ? 1 : 0;
      scores->push_back(text.empty() ? 0.0 : early / static_cast<double>(text.size()));
    }
  }
  bool fail_joint_calls = false;
  int calls = 0;

 private:
  std::mutex mutex_;
  std::vector<std::string> texts_;
};

class Collect : public RequestSink {
 public:
  void OnSegment(const Segment& segment) override {
    segments.push_back(segment);
    if (on_segment) on_segment();
  }
  void OnResult(Result result) override { Done({std::move(result)}, nullptr); }
  void OnError(std::exception_ptr error) override { Done(std::nullopt, error); }

  // Waits for the outcome (at most a minute: a hang fails the test, it does not stall it).
  void Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    ASSERT_TRUE(done_cv_.wait_for(lock, std::chrono::minutes(1), [&] { return done_; }));
  }
  std::string ErrorText() const {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }

  std::vector<Segment> segments;
  std::optional<Result> result;
  std::exception_ptr error;
  std::function<void()> on_segment;

 private:
  void Done(std::optional<Result> r, std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mutex_);
    result = std::move(r);
    error = e;
    done_ = true;
    done_cv_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
};

GenerationParams Params(Mode mode) {
  GenerationParams params;
  params.mode = mode;
  params.seed = 7;
  params.max_tokens = 24;
  params.segment_tokens = 4;
  params.candidates = 4;
  params.max_attempts = 6;
  params.threshold = 0.5;
  return params;
}

struct Harness {
  explicit Harness(EngineOptions engine_options = {}, bool backend = false,
                   FakeModel model = Alphabet(), bool with_reward = true)
      : options(engine_options) {
    vocabulary = std::make_shared<FakeVocabulary>();
    if (with_reward) reward = std::make_shared<LetterReward>();
    loop = std::make_unique<EngineLoop>(FakeDecoders(std::move(model), &log), vocabulary, reward,
                                        options, backend);
  }

  // Submits one request per prompt (each its key: 100 + its index), all at once.
  std::vector<std::shared_ptr<Collect>> Submit(const GenerationParams& params,
                                               const std::vector<std::vector<llama_token>>& prompts,
                                               const std::vector<std::string>& texts = {}) {
    params.Validate(reward != nullptr);
    std::vector<std::unique_ptr<PromptRun>> runs;
    std::vector<std::shared_ptr<Collect>> sinks;
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto run = MakePromptRun(params, prompts[i], options, "prompt " + std::to_string(i));
      run->key = 100 + i;
      run->reward_text = i < texts.size() ? texts[i] : "prompt";
      sinks.push_back(std::make_shared<Collect>());
      run->sink = sinks.back();
      runs.push_back(std::move(run));
    }
    ids = loop->Submit(std::move(runs), false);
    return sinks;
  }

  // Runs each prompt to its Result.
  std::vector<Result> Run(const GenerationParams& params,
                          const std::vector<std::vector<llama_token>>& prompts) {
    std::vector<Result> results;
    for (auto& sink : Submit(params, prompts)) {
      sink->Wait();
      EXPECT_FALSE(sink->error) << sink->ErrorText();
      if (sink->result) results.push_back(*sink->result);
    }
    return results;
  }

  // Nothing is held once every request is out.
  void ExpectAllReleased() {
    loop->Close();
    EXPECT_EQ(log.seqs_in_use, 0);
    EXPECT_EQ(log.cells_in_use, 0);
  }

  EngineOptions options;
  FakeLog log;
  std::shared_ptr<FakeVocabulary> vocabulary;
  std::shared_ptr<LetterReward> reward;
  std::unique_ptr<EngineLoop> loop;
  std::vector<RequestId> ids;
};

void ExpectTokenAccounting(const Result& result) {
  const Stats& stats = result.stats;
  EXPECT_EQ(stats.tokens_accepted, static_cast<int64_t>(result.tokens.size()));
  EXPECT_EQ(stats.tokens_wasted, stats.policy_tokens_sampled - stats.tokens_accepted);
  int64_t in_segments = 0;
  std::string shown;
  for (const Segment& segment : result.segments) {
    in_segments += static_cast<int64_t>(segment.tokens.size());
    shown += segment.text;
  }
  EXPECT_EQ(in_segments, stats.tokens_accepted);
  EXPECT_EQ(shown, result.text);  // no segment shows text that a later one takes back
}

TEST(EngineLoop, PlainGreedyFollowsTheModel) {
  Harness harness;
  GenerationParams params = Params(Mode::kPlain);
  params.sampling.temperature = 0.0f;
  params.max_tokens = 10;
  const Result result = harness.Run(params, {{1}}).at(0);
  EXPECT_EQ(result.text, "bcdefghijk");
  EXPECT_EQ(result.finish_reason, FinishReason::kLength);
  EXPECT_EQ(result.segments.size(), 3u);  // 4 + 4 + 2 tokens
  ExpectTokenAccounting(result);
  ASSERT_TRUE(result.reward.has_value());  // plain mode scores the final text once
  EXPECT_DOUBLE_EQ(*result.reward, 0.4);   // b, c, d, e of ten letters
  harness.ExpectAllReleased();
}

class Layouts : public ::testing::TestWithParam<KvLayout> {};

// A request's text depends on its key and seed alone: not on the round's width, nor on the
// requests beside it.
TEST_P(Layouts, TextDoesNotDependOnWidthOrNeighbours) {
  EngineOptions options;
  options.kv_layout = GetParam();
  options.n_ctx = 512;
  GenerationParams params = Params(Mode::kStars);
  std::vector<std::string> texts;
  for (int32_t candidates : {1, 4}) {
    for (Width width : {Width::kFixed, Width::kAdaptive}) {
      Harness harness(options);
      params.candidates = candidates;
      params.width = width;
      const Result result = harness.Run(params, {{3}}).at(0);
      ExpectTokenAccounting(result);
      texts.push_back(result.text);
      harness.ExpectAllReleased();
    }
  }
  Harness together(options);
  params.candidates = 3;
  const std::vector<Result> results = together.Run(params, {{3}, {5}, {3, 4}, {9}});
  texts.push_back(results.at(0).text);
  for (const std::string& text : texts) EXPECT_EQ(text, texts.front());
  EXPECT_EQ(texts.front().size(), 24u);
  // The STARS rounds did reject: the text is not what plain decoding of the same key gives.
  EXPECT_GT(results.at(0).stats.policy_tokens_sampled, results.at(0).stats.tokens_accepted);
  together.ExpectAllReleased();
}

INSTANTIATE_TEST_SUITE_P(EngineLoop, Layouts,
                         ::testing::Values(KvLayout::kShared, KvLayout::kIsolated));

// Admission reserves each request's peak ids and cells: the decoder never runs out of either,
// and requests that do not fit wait for the ones ahead of them.
TEST(EngineLoop, AdmissionHoldsToTheContextsIdsAndCells) {
  GenerationParams params = Params(Mode::kStars);
  const std::vector<llama_token> prompt = {1, 2, 3};
  const int64_t cells = CellsPerPrompt(params, 3, KvLayout::kShared);
  EngineOptions options;
  options.kv_layout = KvLayout::kShared;
  options.n_ctx = static_cast<int32_t>(2 * cells + 1);  // two requests at a time, not three
  Harness harness(options);
  const std::vector<Result> results = harness.Run(params, std::vector(5, prompt));
  ASSERT_EQ(results.size(), 5u);
  for (const Result& result : results) ExpectTokenAccounting(result);
  EXPECT_LE(harness.log.peak_cells, options.n_ctx);
  EXPECT_GT(harness.log.peak_cells, cells);  // two ran together
  EXPECT_LE(harness.log.peak_seqs, 2 * SequencesPerPrompt(params.mode, params.candidates));
  harness.ExpectAllReleased();

  // Isolated: the context starts with the ids the queue needs (by eights, from n_seq_max), and
  // the requests never hold more than they reserved.
  EngineOptions isolated;
  isolated.n_seq_max = 8;
  Harness one_at_a_time(isolated);
  ASSERT_EQ(one_at_a_time.Run(params, std::vector(3, prompt)).size(), 3u);
  ASSERT_EQ(one_at_a_time.log.contexts.size(), 1u);
  const int32_t ids = 3 * SequencesPerPrompt(params.mode, params.candidates);
  EXPECT_EQ(one_at_a_time.log.contexts[0].n_seq_max, (ids + 7) / 8 * 8);
  EXPECT_LE(one_at_a_time.log.peak_seqs, ids);
  one_at_a_time.ExpectAllReleased();
}

// An idle engine whose queue needs more ids than its context has makes it again, larger.
TEST(EngineLoop, TheContextGrowsWhenIdle) {
  Harness harness;
  GenerationParams params = Params(Mode::kStars);
  harness.Run(params, {{1}});
  harness.Run(params, std::vector<std::vector<llama_token>>(4, {2}));
  ASSERT_EQ(harness.log.contexts.size(), 2u);
  EXPECT_GT(harness.log.contexts[1].n_seq_max, harness.log.contexts[0].n_seq_max);
  EXPECT_EQ(harness.loop->Metrics().contexts_created, 2);
  harness.ExpectAllReleased();
}

TEST(EngineLoop, CancellationEndsOneRequestAndReleasesItsSequences) {
  Harness harness;
  GenerationParams params = Params(Mode::kStars);
  params.max_tokens = 200;
  auto sinks = harness.Submit(params, {{1}, {2}});
  const RequestId first = harness.ids.at(0);
  sinks[0]->on_segment = [&] { harness.loop->Cancel(first); };
  for (auto& sink : sinks) sink->Wait();
  ASSERT_TRUE(sinks[0]->result) << sinks[0]->ErrorText();
  EXPECT_EQ(sinks[0]->result->finish_reason, FinishReason::kCancelled);
  EXPECT_LT(sinks[0]->result->text.size(), 200u);
  ASSERT_TRUE(sinks[1]->result) << sinks[1]->ErrorText();
  EXPECT_EQ(sinks[1]->result->finish_reason, FinishReason::kLength);
  EXPECT_EQ(sinks[1]->result->tokens.size(), 200u);
  EXPECT_FALSE(harness.loop->Cancel(first));  // gone
  EXPECT_EQ(harness.loop->Metrics().requests_cancelled, 1);
  harness.ExpectAllReleased();
}

// A reward that raises on one request's rows fails that request only, with its own error; one
// that fails only on calls joining several requests fails nobody.
TEST(EngineLoop, ARaisingRewardFailsOnlyItsRequest) {
  Harness harness;
  GenerationParams params = Params(Mode::kStars);
  auto sinks = harness.Submit(params, {{1}, {2}, {3}}, {"fine", "boom", "fine"});
  for (auto& sink : sinks) sink->Wait();
  EXPECT_TRUE(sinks[0]->result);
  EXPECT_TRUE(sinks[2]->result);
  ASSERT_TRUE(sinks[1]->error);
  EXPECT_EQ(sinks[1]->ErrorText(), "boom rows raise");
  EXPECT_EQ(harness.loop->Metrics().requests_failed, 1);

  harness.reward->fail_joint_calls = true;
  const std::vector<Result> results = harness.Run(params, {{1}, {2}, {3}});
  EXPECT_EQ(results.size(), 3u);
  harness.ExpectAllReleased();
}

// A stop string whose first letter ends one segment and whose last begins the next: the
// response ends before it, and the text a segment showed is never taken back.
TEST(EngineLoop, AStopStringAcrossSegments) {
  for (Mode mode : {Mode::kPlain, Mode::kStars}) {
    Harness harness;
    GenerationParams params = Params(mode);
    params.sampling.temperature = 0.0f;
    params.segment_tokens = 3;
    params.threshold = -1.0;  // every segment passes
    params.stop = {"de"};
    const Result result = harness.Run(params, {{1}}).at(0);  // b c d | e f g ...
    EXPECT_EQ(result.text, "bc") << ModeName(mode);
    EXPECT_EQ(result.finish_reason, FinishReason::kStop);
    ExpectTokenAccounting(result);
    ASSERT_EQ(result.segments.size(), 2u);
    EXPECT_EQ(result.segments[0].text, "bc");  // "d" held back: it may start the stop string
    EXPECT_EQ(result.segments[1].text, "");
    harness.ExpectAllReleased();
  }
}

// Tokens drawn in the graph (llama.cpp's backend sampling, here the fake's) are the tokens the
// host draws with the same chains, and each counts as a backend draw.
TEST(EngineLoop, BackendDrawsMatchHostDraws) {
  for (Mode mode : {Mode::kPlain, Mode::kBestOfN, Mode::kStars}) {
    GenerationParams params = Params(mode);
    Harness host;
    Harness backend({}, true);
    const std::vector<Result> on_host = host.Run(params, {{1}, {6}});
    const std::vector<Result> on_backend = backend.Run(params, {{1}, {6}});
    ASSERT_EQ(on_host.size(), 2u);
    ASSERT_EQ(on_backend.size(), 2u);
    int64_t backend_draws = 0;
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(on_backend[i].text, on_host[i].text) << ModeName(mode);
      EXPECT_EQ(on_host[i].stats.backend_tokens_sampled, 0);
      EXPECT_GT(on_backend[i].stats.backend_tokens_sampled, 0);
      backend_draws += on_backend[i].stats.backend_tokens_sampled;
    }
    EXPECT_EQ(backend_draws, backend.log.backend_draws) << ModeName(mode);
    host.ExpectAllReleased();
    backend.ExpectAllReleased();
  }
}

// A decode that fails fails the requests it was running; the loop goes on with the next.
TEST(EngineLoop, ADecoderFaultFailsTheRunningRequestsOnly) {
  Harness harness;
  harness.log.fail_decode_call = 3;
  GenerationParams params = Params(Mode::kStars);
  auto sinks = harness.Submit(params, {{1}, {2}});
  for (auto& sink : sinks) {
    sink->Wait();
    ASSERT_TRUE(sink->error);
    EXPECT_NE(sink->ErrorText().find("llama_decode failed"), std::string::npos);
  }
  EXPECT_EQ(harness.Run(params, {{3}}).size(), 1u);
  harness.ExpectAllReleased();
}

// The alphabet, with a planted entropy spike: after an 'e' every letter is as likely.
FakeModel UnsureAfterE(size_t length = 1000) {
  FakeModel alphabet = Alphabet(length);
  return [alphabet](const std::vector<llama_token>& history) {
    if (history.back() != 5) return alphabet(history);
    std::vector<float> flat(FakeVocabulary::kSize, 1.0f);
    flat[0] = -10.0f;  // log(15) = 2.71 nats
    return flat;
  };
}

// CARDS: a segment ends right after each 'e' (the next token's entropy crosses the threshold),
// or at its cap; the decisions are STARS's.
TEST(EngineLoop, CardsSegmentsEndWhereTheEntropyRises) {
  for (float temperature : {0.0f, 0.8f}) {
    Harness harness({}, false, UnsureAfterE());
    GenerationParams params = Params(Mode::kCards);
    params.sampling.temperature = temperature;
    params.segment_tokens = 6;
    params.max_tokens = 40;
    params.entropy_threshold = 2.0;  // the alphabet's rows hold about 0.5 nats
    const Result result = harness.Run(params, {{1}}).at(0);
    ExpectTokenAccounting(result);
    ASSERT_GE(result.segments.size(), 4u);
    int32_t ended_by_entropy = 0;
    for (size_t s = 0; s < result.segments.size(); ++s) {
      const std::vector<int32_t>& tokens = result.segments[s].tokens;
      ASSERT_FALSE(tokens.empty());
      EXPECT_LE(tokens.size(), 6u);  // the cap holds
      for (size_t t = 0; t + 1 < tokens.size(); ++t) {
        EXPECT_NE(tokens[t], 5) << "an 'e' inside segment " << s << ": " << result.text;
      }
      const bool last = s + 1 == result.segments.size();
      if (tokens.size() < 6 && !last) {
        EXPECT_EQ(tokens.back(), 5) << "segment " << s << " ended early without a spike";
      }
      ended_by_entropy += tokens.back() == 5 ? 1 : 0;
    }
    EXPECT_GE(ended_by_entropy, 3);
    if (temperature == 0.0f) {
      EXPECT_EQ(result.text.substr(0, 9), "bcdeabcde");
    }
    harness.ExpectAllReleased();
  }
}

// As for STARS: the text depends on the key and seed alone, not on the width or the neighbours.
TEST_P(Layouts, CardsTextDoesNotDependOnWidthOrNeighbours) {
  EngineOptions options;
  options.kv_layout = GetParam();
  options.n_ctx = 512;
  GenerationParams params = Params(Mode::kCards);
  params.entropy_threshold = 2.0;
  std::vector<std::string> texts;
  for (int32_t candidates : {1, 4}) {
    Harness harness(options, false, UnsureAfterE());
    params.candidates = candidates;
    texts.push_back(harness.Run(params, {{3}}).at(0).text);
    harness.ExpectAllReleased();
  }
  Harness together(options, false, UnsureAfterE());
  params.candidates = 3;
  const std::vector<Result> results = together.Run(params, {{3}, {5}, {3, 4}, {9}});
  texts.push_back(results.at(0).text);
  for (const std::string& text : texts) EXPECT_EQ(text, texts.front());
  together.ExpectAllReleased();
}

// CARDS reads each row's entropy on the host: on a backend it samples there, and says why.
TEST(EngineLoop, CardsSamplesOnTheHost) {
  Harness host({}, false, UnsureAfterE());
  Harness backend({}, true, UnsureAfterE());
  const GenerationParams params = Params(Mode::kCards);
  const Result on_host = host.Run(params, {{1}}).at(0);
  const Result on_backend = backend.Run(params, {{1}}).at(0);
  EXPECT_EQ(on_backend.text, on_host.text);
  EXPECT_EQ(on_backend.stats.backend_tokens_sampled, 0);
  EXPECT_NE(on_backend.stats.sampling_fallback.find("cards"), std::string::npos);
}

// A probe's reward: checks that each row's hidden state is the policy's at the row's last
// decoded token (prompt + response less its last token), as the fake decoder computes it.
class FeatureReward : public LetterReward {
 public:
  explicit FeatureReward(std::map<std::string, std::vector<llama_token>> prompts)
      : prompts_(std::move(prompts)) {}
  void Begin(int32_t prompt, std::string_view text) override {
    LetterReward::Begin(prompt, text);
    by_slot_[prompt] = prompts_.at(std::string(text));
  }
  void Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) override {
    for (const RewardRow& row : rows) {
      if (row.features == nullptr) {
        ++without;
        continue;
      }
      ++with;
      std::vector<llama_token> decoded = by_slot_.at(row.prompt);
      decoded.insert(decoded.end(), row.trunk_tokens, row.trunk_tokens + row.n_trunk_tokens);
      decoded.insert(decoded.end(), row.segment_tokens,
                     row.segment_tokens + row.n_segment_tokens - 1);
      float sum = 0;
      for (llama_token t : decoded) sum += static_cast<float>(t);
      const bool same = row.features[0] == static_cast<float>(decoded.size()) &&
                        row.features[1] == static_cast<float>(decoded.back()) &&
                        row.features[2] == sum;
      mismatches += same ? 0 : 1;
    }
    LetterReward::Score(rows, scores);
  }
  int64_t with = 0, without = 0, mismatches = 0;

 private:
  std::map<std::string, std::vector<llama_token>> prompts_;
  std::map<int32_t, std::vector<llama_token>> by_slot_;
};

// A probe reward reads each capped candidate's hidden state from the decodes that sampled it:
// the state at its second-to-last token, with no decode of its own.
TEST(EngineLoop, HiddenStatesReachAProbeAtEachCandidatesLastDecodedToken) {
  for (Mode mode : {Mode::kStars, Mode::kCards, Mode::kBestOfN}) {
    FakeLog log;
    auto reward = std::make_shared<FeatureReward>(
        std::map<std::string, std::vector<llama_token>>{{"p0", {1}}, {"p1", {4, 6}}});
    EngineOptions options;
    // Responses end by end-of-generation after 14 tokens: those candidates decoded their last
    // token, and their rows must go without a hidden state.
    EngineLoop loop(FakeDecoders(UnsureAfterE(14), &log), std::make_shared<FakeVocabulary>(),
                    reward, options, false, 3);
    GenerationParams params = Params(mode);
    // Best-of-N's candidates are whole responses: short enough that some reach the cap.
    params.max_tokens = mode == Mode::kBestOfN ? 8 : 24;
    params.Validate(true);
    std::vector<std::unique_ptr<PromptRun>> runs;
    std::vector<std::shared_ptr<Collect>> sinks;
    for (int i = 0; i < 2; ++i) {
      auto run = MakePromptRun(
          params, i == 0 ? std::vector<llama_token>{1} : std::vector<llama_token>{4, 6}, options,
          "prompt");
      run->key = 100 + i;
      run->reward_text = "p" + std::to_string(i);
      sinks.push_back(std::make_shared<Collect>());
      run->sink = sinks.back();
      runs.push_back(std::move(run));
    }
    loop.Submit(std::move(runs), false);
    for (auto& sink : sinks) {
      sink->Wait();
      ASSERT_TRUE(sink->result) << sink->ErrorText();
    }
    loop.Close();
    EXPECT_EQ(reward->mismatches, 0) << ModeName(mode);
    EXPECT_GT(reward->with, 4) << ModeName(mode);
    if (mode != Mode::kBestOfN) EXPECT_GT(reward->without, 0) << ModeName(mode);
    EXPECT_GT(log.hidden_rows, 0);
  }
}

// Isolated: a done candidate between live ones decodes a padding token, so that a step's ids
// stay consecutive (one micro-batch, one pass over the weights); the padding is dropped on
// acceptance and the text is what the shared layout gives.
TEST(EngineLoop, PaddingKeepsAStepsIdsConsecutive) {
  // End of generation is always likely: candidates end at different steps.
  const FakeModel model = [alphabet = Alphabet()](const std::vector<llama_token>& history) {
    std::vector<float> logits = alphabet(history);
    logits[0] = 0.0f;
    return logits;
  };
  GenerationParams params = Params(Mode::kBestOfN);
  params.max_tokens = 16;
  params.candidates = 6;
  std::vector<std::string> texts[2];
  for (KvLayout layout : {KvLayout::kShared, KvLayout::kIsolated}) {
    EngineOptions options;
    options.kv_layout = layout;
    Harness harness(options, false, model);
    for (const Result& result : harness.Run(params, {{1}, {2}, {3}})) {
      ExpectTokenAccounting(result);
      texts[layout == KvLayout::kIsolated].push_back(result.text);
    }
    harness.ExpectAllReleased();
    if (layout == KvLayout::kIsolated) {
      EXPECT_GT(harness.log.padding_jobs, 0);
      EXPECT_EQ(harness.log.step_runs, harness.log.steps);  // one run of ids per step
    }
  }
  EXPECT_EQ(texts[0], texts[1]);
}

TEST(EngineLoop, ClosedLoopRefusesAndFailsWhatWaits) {
  Harness harness;
  harness.loop->Close();
  EXPECT_THROW(harness.Submit(Params(Mode::kPlain), {{1}}), EngineClosedError);
}

}  // namespace
}  // namespace stars::testing
