// BatchRunner: jobs laid into one batch and decoded in views of at most n_batch tokens, each
// output row mapped back to its job, in both KV layouts.
#include "llama/batch_runner.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llama/context.h"
#include "llama/sequence_pool.h"
#include "stars/errors.h"
#include "tiny_models.h"

namespace stars_test {
namespace {

using stars::KvLayout;

struct Recorded {
  std::vector<int32_t> view_tokens;             // each reported view's size
  std::map<size_t, std::vector<float>> logits;  // by job
  std::map<size_t, int32_t> batch_index;        // by job: its row in its view
};

class BatchRunnerTest : public ::testing::Test {
 protected:
  void Open(KvLayout layout, int32_t n_batch, int32_t n_ubatch, int32_t n_seq_max = 4) {
    model_ = TinyLlama();
    stars::ContextOptions options;
    options.n_ctx = 256;
    options.n_seq_max = n_seq_max;
    options.layout = layout;
    options.n_batch = n_batch;
    options.n_ubatch = n_ubatch;
    options.n_threads = kThreads;
    layout_ = layout;
    context_ = std::make_unique<stars::Context>(model_, options);
    pool_ = std::make_unique<stars::SequencePool>(*context_);
  }

  // Token lists of the given lengths, each a different text.
  std::vector<std::vector<llama_token>> Inputs(const std::vector<int32_t>& lengths) {
    const std::vector<llama_token> text = model_->Tokenize(
        "Once upon a time there was a cat who sat on the mat and a dog who ran into the old "
        "forest, where the happy bird sang to the blue moon and the red sun every day of the year",
        true, false);
    std::vector<std::vector<llama_token>> inputs;
    for (size_t i = 0; i < lengths.size(); ++i) {
      EXPECT_LE(static_cast<size_t>(lengths[i]) + i, text.size());
      inputs.emplace_back(text.begin() + static_cast<std::ptrdiff_t>(i),
                          text.begin() + static_cast<std::ptrdiff_t>(i + lengths[i]));
    }
    return inputs;
  }

  Recorded Run(stars::BatchRunner& runner, const std::vector<stars::DecodeJob>& jobs) {
    Recorded recorded;
    runner.Run(jobs, [&](const stars::DecodedView& view) {
      recorded.view_tokens.push_back(view.n_tokens);
      for (const stars::DecodedOutput& out : view.outputs) {
        EXPECT_GE(out.batch_index, 0);
        EXPECT_LT(out.batch_index, view.n_tokens);
        EXPECT_EQ(recorded.logits.count(out.job), 0u) << "job " << out.job << " reported twice";
        const float* row = context_->Logits(out.batch_index);
        recorded.logits[out.job].assign(row, row + model_->n_vocab());
        recorded.batch_index[out.job] = out.batch_index;
      }
    });
    return recorded;
  }

  std::shared_ptr<stars::Model> model_;
  KvLayout layout_ = KvLayout::kShared;
  std::unique_ptr<stars::Context> context_;
  std::unique_ptr<stars::SequencePool> pool_;
};

TEST_F(BatchRunnerTest, ViewsOfNBatchTokensMapOutputsBackToTheirJobs) {
  Open(KvLayout::kShared, 8, 8);
  stars::BatchRunner runner(*context_, pool_.get());
  EXPECT_EQ(runner.n_batch(), 8);
  const auto inputs = Inputs({13, 5, 0, 9});
  std::vector<stars::DecodeJob> jobs;
  for (size_t j = 0; j < inputs.size(); ++j) {
    const llama_seq_id seq = pool_->Acquire();
    // Job 1 asks no output; job 2 has no tokens and is skipped.
    jobs.push_back({seq, 0, inputs[j].data(), static_cast<int32_t>(inputs[j].size()), j != 1});
  }
  const Recorded recorded = Run(runner, jobs);
  // 27 tokens in views [0, 8) [8, 16) [16, 24) [24, 27): job 0 ends at token 12 (view 2, row 4)
  // and job 3 at token 26 (view 4, row 2). Views without an output are not reported.
  EXPECT_EQ(recorded.view_tokens, (std::vector<int32_t>{8, 3}));
  ASSERT_EQ(recorded.logits.size(), 2u);
  EXPECT_EQ(recorded.batch_index.at(0), 4);
  EXPECT_EQ(recorded.batch_index.at(3), 2);
  for (size_t j : {0u, 3u}) {
    EXPECT_LT(RelMaxAbs(recorded.logits.at(j), ScratchLogits(model_, inputs[j], layout_)), 1e-3)
        << "job " << j;
  }
  // The pool learns what each sequence holds.
  EXPECT_EQ(pool_->n_cells_in_use(), 13 + 5 + 9);
}

TEST_F(BatchRunnerTest, JobsFromAPositionContinueTheirSequences) {
  Open(KvLayout::kShared, 8, 8);
  stars::BatchRunner runner(*context_, pool_.get());
  const auto inputs = Inputs({11, 6});
  const llama_seq_id a = pool_->Acquire(), b = pool_->Acquire();
  // The first 4 tokens of each, then the rest from position 4 in one split batch.
  Run(runner, {{a, 0, inputs[0].data(), 4, false}, {b, 0, inputs[1].data(), 4, false}});
  const Recorded recorded =
      Run(runner, {{b, 4, inputs[1].data() + 4, 2, true}, {a, 4, inputs[0].data() + 4, 7, true}});
  EXPECT_EQ(recorded.view_tokens, (std::vector<int32_t>{8, 1}));
  EXPECT_LT(RelMaxAbs(recorded.logits.at(0), ScratchLogits(model_, inputs[1], layout_)), 1e-3);
  EXPECT_LT(RelMaxAbs(recorded.logits.at(1), ScratchLogits(model_, inputs[0], layout_)), 1e-3);
  EXPECT_EQ(pool_->n_cells_in_use(), 11 + 6);
}

TEST_F(BatchRunnerTest, WholeJobsNeverSpanTwoViews) {
  Open(KvLayout::kShared, 8, 8);
  stars::BatchRunner runner(*context_, pool_.get(), /*whole_jobs=*/true);
  const auto inputs = Inputs({5, 3, 6, 2});
  std::vector<stars::DecodeJob> jobs;
  for (const auto& input : inputs) {
    jobs.push_back({pool_->Acquire(), 0, input.data(), static_cast<int32_t>(input.size()), true});
  }
  const Recorded recorded = Run(runner, jobs);
  EXPECT_EQ(recorded.view_tokens, (std::vector<int32_t>{8, 8}));
  EXPECT_EQ(recorded.batch_index.at(0), 4);
  EXPECT_EQ(recorded.batch_index.at(1), 7);
  EXPECT_EQ(recorded.batch_index.at(2), 5);
  EXPECT_EQ(recorded.batch_index.at(3), 7);
  for (size_t j = 0; j < inputs.size(); ++j) {
    EXPECT_LT(RelMaxAbs(recorded.logits.at(j), ScratchLogits(model_, inputs[j], layout_)), 1e-3)
        << "job " << j;
  }
  // A whole job longer than the batch cannot be decoded whole.
  pool_->Clear();
  const auto longer = Inputs({9});
  try {
    Run(runner, {{pool_->Acquire(), 0, longer[0].data(), 9, true}});
    ADD_FAILURE() << "a 9-token whole job in an 8-token batch";
  } catch (const stars::Error& e) {
    EXPECT_NE(std::string(e.what()).find("longer than the batch (n_batch=8)"), std::string::npos)
        << e.what();
  }
}

TEST_F(BatchRunnerTest, IsolatedViewsHoldJobsOfOneLengthAndMapRowsBack) {
  Open(KvLayout::kIsolated, 16, 8);
  stars::BatchRunner runner(*context_, pool_.get());
  const auto inputs = Inputs({20, 3, 5, 3});
  std::vector<stars::DecodeJob> jobs;
  // Ids out of order: job 1 on sequence 2, job 3 on sequence 1.
  const std::vector<llama_seq_id> seqs = {0, 2, 3, 1};
  for (int i = 0; i < 4; ++i) pool_->Acquire();
  for (size_t j = 0; j < inputs.size(); ++j) {
    jobs.push_back({seqs[j], 0, inputs[j].data(), static_cast<int32_t>(inputs[j].size()), true});
  }
  const Recorded recorded = Run(runner, jobs);
  // By length, then id: jobs 3 and 1 (3 tokens each, one micro-batch of 6), job 2 (5), then
  // job 0 cut as it would be alone: a view of two micro-batches (16, no output) and one of 4.
  EXPECT_EQ(recorded.view_tokens, (std::vector<int32_t>{6, 5, 4}));
  EXPECT_EQ(recorded.batch_index.at(3), 2);
  EXPECT_EQ(recorded.batch_index.at(1), 5);
  EXPECT_EQ(recorded.batch_index.at(2), 4);
  EXPECT_EQ(recorded.batch_index.at(0), 3);
  // Each job against its decode alone: exact for the jobs alone in their views (job 0 cut as
  // it would be alone); jobs 1 and 3, side by side in one micro-batch, differ in the last bits
  // (about 4e-8 relative on this F32 model).
  for (size_t j = 0; j < inputs.size(); ++j) {
    const double error =
        RelMaxAbs(recorded.logits.at(j), ScratchLogits(model_, inputs[j], layout_, 16, 8));
    if (j == 0 || j == 2) {
      EXPECT_EQ(error, 0.0) << "job " << j;
    } else {
      EXPECT_LT(error, 1e-6) << "job " << j;
    }
  }
  EXPECT_EQ(pool_->n_cells_in_use(), 20 + 3 + 5 + 3);
}

// llama.cpp puts only consecutive sequence ids in one micro-batch of an isolated context (its
// sequential split): each gap among a step's ids costs another pass over the weights.
TEST_F(BatchRunnerTest, MicroBatchesCountTheRunsOfConsecutiveIds) {
  for (KvLayout layout : {KvLayout::kIsolated, KvLayout::kShared}) {
    Open(layout, 16, 8, 8);
    stars::BatchRunner runner(*context_, pool_.get());
    for (int i = 0; i < 8; ++i) pool_->Acquire();
    const llama_token token = 1;
    std::vector<stars::DecodeJob> jobs;
    for (llama_seq_id seq : {7, 0, 3, 1, 4}) jobs.push_back({seq, 0, &token, 1, true});
    std::vector<int32_t> micro_batches;
    runner.Run(
        jobs, [&](const stars::DecodedView& view) { micro_batches.push_back(view.micro_batches); });
    // Isolated: 0-1, 3-4 and 7; shared: five tokens in one micro-batch of 8.
    EXPECT_EQ(micro_batches, std::vector<int32_t>{layout == KvLayout::kIsolated ? 3 : 1});
  }
}

TEST_F(BatchRunnerTest, NoTokensNoViews) {
  Open(KvLayout::kShared, 8, 8);
  stars::BatchRunner runner(*context_, pool_.get());
  const llama_token token = 1;
  const Recorded recorded = Run(runner, {{pool_->Acquire(), 0, &token, 0, true}});
  EXPECT_TRUE(recorded.view_tokens.empty());
  EXPECT_EQ(pool_->n_cells_in_use(), 0);
}

}  // namespace
}  // namespace stars_test
