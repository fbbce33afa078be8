// A GGUF sequence classifier or reranker as a batched reward, run by llama.cpp with RANK
// pooling. Encoders attend both ways, so each row is encoded whole; all rows of a Score call
// go through as few batched decodes as the context allows.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "llama.h"
#include "llama/batch_runner.h"
#include "llama/context.h"
#include "llama/tokenizer.h"
#include "stars/model.h"
#include "stars/reward.h"
#include "stars/rewards.h"

namespace stars {

// The implementation of the public ClassifierReward.
class ClassifierRewardImpl : public ClassifierReward {
 public:
  // Throws RewardError when the GGUF has no classification head (its pooling is not RANK),
  // and ParameterError for a label out of range.
  ClassifierRewardImpl(std::shared_ptr<Model> model, const ClassifierOptions& options);

  void Begin(int32_t prompt, std::string_view text) override;
  void Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) override;
  int64_t TokensDecoded(int32_t prompt) const override;
  int64_t RowsTruncated(int32_t prompt) const override;

  std::vector<double> ScoreTexts(const std::vector<std::string>& prompts,
                                 const std::vector<std::string>& responses) override;
  // Cut to row_limit() like a generation's rows.
  std::vector<llama_token> InputTokens(const std::string& prompt,
                                       const std::string& response) const override;
  bool pair() const override { return pair_; }

 private:
  // The row's tokens, cut to row_limit_ keeping the prompt's start and the response's end.
  std::vector<llama_token> BuildInput(const std::string& prompt, const std::string& response,
                                      bool* truncated) const;
  std::vector<double> ScoreInputs(const std::vector<std::vector<llama_token>>& inputs);

  // Serializes every public call: calls from several threads share one llama context.
  mutable std::mutex mutex_;
  std::shared_ptr<Model> model_;
  Tokenizer tokenizer_;
  std::unique_ptr<Context> context_;
  std::unique_ptr<BatchRunner> runner_;
  std::vector<int32_t> labels_;
  bool pair_ = false;
  int32_t row_limit_ = 0;
  int32_t rows_per_batch_ = 0;        // 1 when isolated: rows are never encoded side by side
  std::vector<std::string> prompts_;  // by prompt id (Begin)
  std::vector<int64_t> tokens_decoded_;
  std::vector<int64_t> rows_truncated_;
};

}  // namespace stars
