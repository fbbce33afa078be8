// SequencePool against from-scratch decoding, in both KV layouts: fork, rewind, adopt, keep and
// release, and the KV cells it counts for each.
#include "llama/sequence_pool.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "llama/batch_runner.h"
#include "llama/context.h"
#include "stars/errors.h"
#include "tiny_models.h"

namespace stars_test {
namespace {

using stars::KvLayout;

class SequencePoolTest : public ::testing::TestWithParam<KvLayout> {
 protected:
  void SetUp() override {
    model_ = TinyLlama();
    stars::ContextOptions options;
    options.n_ctx = 256;
    options.n_seq_max = 4;
    options.layout = GetParam();
    options.n_threads = kThreads;
    context_ = std::make_unique<stars::Context>(model_, options);
    pool_ = std::make_unique<stars::SequencePool>(*context_);
    prompt_ = model_->Tokenize("The quick brown fox", true, false);
    n_ = static_cast<int64_t>(prompt_.size());
  }

  bool isolated() const { return GetParam() == KvLayout::kIsolated; }

  // Decodes each (sequence, tokens) from the sequence's end `pos`, all in one Run; returns the
  // logits after each one's last token.
  std::vector<std::vector<float>> Decode(
      const std::vector<std::pair<llama_seq_id, const std::vector<llama_token>*>>& seqs,
      const std::vector<llama_pos>& pos) {
    std::vector<stars::DecodeJob> jobs;
    for (size_t i = 0; i < seqs.size(); ++i) {
      jobs.push_back({seqs[i].first, pos[i], seqs[i].second->data(),
                      static_cast<int32_t>(seqs[i].second->size()), true});
    }
    std::vector<std::vector<float>> logits(seqs.size());
    stars::BatchRunner runner(*context_, pool_.get());
    runner.Run(jobs, [&](const stars::DecodedView& view) {
      for (const stars::DecodedOutput& out : view.outputs) {
        const float* row = context_->Logits(out.batch_index);
        logits[out.job].assign(row, row + model_->n_vocab());
      }
    });
    return logits;
  }
  std::vector<float> Decode(llama_seq_id seq, llama_pos pos, const std::vector<llama_token>& t) {
    return Decode({{seq, &t}}, {pos}).at(0);
  }

  std::vector<llama_token> Concat(std::vector<llama_token> a, const std::vector<llama_token>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }
  std::vector<float> Scratch(const std::vector<llama_token>& tokens) {
    return ScratchLogits(model_, tokens, GetParam());
  }

  std::shared_ptr<stars::Model> model_;
  std::unique_ptr<stars::Context> context_;
  std::unique_ptr<stars::SequencePool> pool_;
  std::vector<llama_token> prompt_;
  int64_t n_ = 0;
};

TEST_P(SequencePoolTest, AcquireTakesLowestIdsAndLastingTheHighest) {
  EXPECT_EQ(pool_->n_total(), 4);
  EXPECT_EQ(pool_->isolated(), isolated());
  EXPECT_EQ(pool_->Acquire(), 0);
  EXPECT_EQ(pool_->AcquireLasting(), 3);
  EXPECT_EQ(pool_->Acquire(), 1);
  EXPECT_EQ(pool_->n_in_use(), 3);
  EXPECT_EQ(pool_->n_free(), 1);
  EXPECT_EQ(pool_->AcquireLasting(), 2);
  try {
    pool_->Acquire();
    ADD_FAILURE() << "a fifth id from a pool of four";
  } catch (const stars::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no free sequence id"), std::string::npos) << e.what();
  }
  pool_->Release(1);
  EXPECT_EQ(pool_->Acquire(), 1);
  pool_->Clear();
  EXPECT_EQ(pool_->n_free(), 4);
  EXPECT_EQ(pool_->n_cells_in_use(), 0);
}

TEST_P(SequencePoolTest, BadIdsThrowInsteadOfReachingLlamaCpp) {
  const llama_seq_id trunk = pool_->AcquireLasting();
  Decode(trunk, 0, prompt_);
  for (llama_seq_id seq : {999, -1, 0}) {
    EXPECT_THROW(pool_->Fork(seq), stars::ParameterError);
    EXPECT_THROW(pool_->Rewind(seq, 0), stars::ParameterError);
    EXPECT_THROW(pool_->Release(seq), stars::ParameterError);
    EXPECT_THROW(pool_->Adopt(trunk, seq), stars::ParameterError);
  }
  EXPECT_THROW(pool_->Rewind(trunk, -1), stars::ParameterError);
  // The trunk is intact: a fork of it decodes on from its cells.
  const std::vector<llama_token> tail = Tokens(*model_, " jumps");
  const llama_seq_id fork = pool_->Fork(trunk);
  EXPECT_LT(RelMaxAbs(Decode(fork, n_, tail), Scratch(Concat(prompt_, tail))), 1e-3);
}

TEST_P(SequencePoolTest, ForksInOneBatchMatchFromScratchAndCountTheirCells) {
  const llama_seq_id trunk = pool_->AcquireLasting();
  Decode(trunk, 0, prompt_);
  EXPECT_EQ(pool_->n_cells_in_use(), n_);
  const std::vector<std::vector<llama_token>> tails = {Tokens(*model_, " jumps over the lazy dog"),
                                                       Tokens(*model_, " is red"),
                                                       Tokens(*model_, " ran into the forest")};
  std::vector<std::pair<llama_seq_id, const std::vector<llama_token>*>> seqs;
  int64_t tail_cells = 0;
  for (const auto& tail : tails) {
    seqs.push_back({pool_->Fork(trunk), &tail});
    tail_cells += static_cast<int64_t>(tail.size());
  }
  EXPECT_EQ(seqs[0].first, 0);  // forks take the lowest ids
  EXPECT_EQ(seqs[2].first, 2);
  // Shared: a fork holds its trunk's cells with it; isolated: it copies them into its stream.
  const int64_t copied = isolated() ? 3 * n_ : 0;
  EXPECT_EQ(pool_->n_cells_in_use(), n_ + copied);
  const auto logits = Decode(seqs, std::vector<llama_pos>(3, static_cast<llama_pos>(n_)));
  EXPECT_EQ(pool_->n_cells_in_use(), n_ + copied + tail_cells);
  for (size_t i = 0; i < tails.size(); ++i) {
    EXPECT_LT(RelMaxAbs(logits[i], Scratch(Concat(prompt_, tails[i]))), 1e-3) << "fork " << i;
  }
  for (const auto& seq : seqs) pool_->Release(seq.first);
  EXPECT_EQ(pool_->n_cells_in_use(), n_);
  EXPECT_EQ(pool_->n_in_use(), 1);
}

TEST_P(SequencePoolTest, RewindDropsTheTailAndDecodesOnFromScratch) {
  const std::vector<llama_token> tail_a = Tokens(*model_, " there was a cat who sat on the mat");
  const std::vector<llama_token> tail_b = Tokens(*model_, " a bird sang");
  const llama_seq_id seq = pool_->AcquireLasting();
  const std::vector<llama_token> full = Concat(prompt_, tail_a);
  Decode(seq, 0, full);
  EXPECT_EQ(pool_->n_cells_in_use(), static_cast<int64_t>(full.size()));
  pool_->Rewind(seq, static_cast<llama_pos>(n_));
  EXPECT_EQ(pool_->n_cells_in_use(), n_);
  pool_->Rewind(seq, static_cast<llama_pos>(n_ + 5));  // past the end: nothing to drop
  EXPECT_EQ(pool_->n_cells_in_use(), n_);
  const std::vector<float> rewound = Decode(seq, static_cast<llama_pos>(n_), tail_b);
  EXPECT_LT(RelMaxAbs(rewound, Scratch(Concat(prompt_, tail_b))), 1e-3);
  // The old tail is really gone: the result differs from decoding after it.
  EXPECT_GT(RelMaxAbs(rewound, Scratch(Concat(full, tail_b))), 1e-3);
}

TEST_P(SequencePoolTest, AForkRewoundIntoItsTrunkDecodesItsOwnCells) {
  const llama_seq_id trunk = pool_->AcquireLasting();
  Decode(trunk, 0, prompt_);
  const llama_seq_id fork = pool_->Fork(trunk);
  pool_->Rewind(fork, static_cast<llama_pos>(n_ - 2));
  // Shared: the trunk still holds the two cells; isolated: the fork's copy loses them.
  EXPECT_EQ(pool_->n_cells_in_use(), isolated() ? 2 * n_ - 2 : n_);
  std::vector<llama_token> redo(prompt_.end() - 2, prompt_.end());
  const std::vector<llama_token> tail = Tokens(*model_, " sat");
  redo.insert(redo.end(), tail.begin(), tail.end());
  const std::vector<float> logits = Decode(fork, static_cast<llama_pos>(n_ - 2), redo);
  const int64_t own = static_cast<int64_t>(redo.size());
  EXPECT_EQ(pool_->n_cells_in_use(), isolated() ? 2 * n_ - 2 + own : n_ + own);
  EXPECT_LT(RelMaxAbs(logits, Scratch(Concat(prompt_, tail))), 1e-3);
}

TEST_P(SequencePoolTest, AdoptMakesTheChosenForkTheTrunk) {
  const llama_seq_id trunk = pool_->AcquireLasting();
  Decode(trunk, 0, prompt_);
  const std::vector<llama_token> tail_a = Tokens(*model_, " jumps over");
  const std::vector<llama_token> tail_b = Tokens(*model_, " is red");
  const llama_seq_id a = pool_->Fork(trunk);
  const llama_seq_id b = pool_->Fork(trunk);
  Decode({{a, &tail_a}, {b, &tail_b}}, {static_cast<llama_pos>(n_), static_cast<llama_pos>(n_)});
  const int64_t ma = static_cast<int64_t>(tail_a.size());
  const int64_t mb = static_cast<int64_t>(tail_b.size());

  const llama_seq_id adopted = pool_->Adopt(trunk, a);
  // Isolated: the trunk keeps its lasting id and gets a copy of `a`'s stream; shared: `a` is
  // the trunk now, its shared cells its own.
  EXPECT_EQ(adopted, isolated() ? trunk : a);
  EXPECT_EQ(pool_->n_in_use(), 2);
  EXPECT_EQ(pool_->n_cells_in_use(), isolated() ? (n_ + ma) + (n_ + mb) : n_ + ma + mb);
  pool_->Release(b);
  EXPECT_EQ(pool_->n_cells_in_use(), n_ + ma);
  // The adopted trunk decodes on as if it had been decoded whole.
  const std::vector<llama_token> more = Tokens(*model_, " the lazy dog");
  const std::vector<float> logits = Decode(adopted, static_cast<llama_pos>(n_ + ma), more);
  EXPECT_LT(RelMaxAbs(logits, Scratch(Concat(Concat(prompt_, tail_a), more))), 1e-3);
  EXPECT_THROW(pool_->Adopt(trunk == adopted ? a : trunk, adopted), stars::ParameterError);
}

TEST_P(SequencePoolTest, KeepMovesAnIsolatedForkToALastingId) {
  const llama_seq_id trunk = pool_->AcquireLasting();
  Decode(trunk, 0, prompt_);
  const llama_seq_id fork = pool_->Fork(trunk);
  const std::vector<llama_token> tail = Tokens(*model_, " is red");
  Decode(fork, static_cast<llama_pos>(n_), tail);
  const int64_t cells = pool_->n_cells_in_use();
  const llama_seq_id kept = pool_->Keep(fork);
  EXPECT_EQ(kept, isolated() ? 2 : fork);  // the highest free id
  EXPECT_EQ(pool_->n_in_use(), 2);
  EXPECT_EQ(pool_->n_cells_in_use(), cells);
  const std::vector<llama_token> more = Tokens(*model_, " and blue");
  const std::vector<float> logits =
      Decode(kept, static_cast<llama_pos>(n_ + static_cast<int64_t>(tail.size())), more);
  EXPECT_LT(RelMaxAbs(logits, Scratch(Concat(Concat(prompt_, tail), more))), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Layouts, SequencePoolTest, ::testing::ValuesIn(Layouts()),
                         [](const auto& info) { return LayoutName(info.param); });

}  // namespace
}  // namespace stars_test
