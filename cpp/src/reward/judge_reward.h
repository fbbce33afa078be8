// A causal instruct GGUF model asked a yes/no question about the response:
// reward = logit(yes) - logit(no) at the answer position.
//
// Per prompt the judge keeps a trunk sequence (rubric + prompt + accepted response) in its own
// KV cache. A candidate forks the trunk and decodes only its segment and the question suffix.
// When the judge shares the policy's vocabulary, policy token ids pass straight through;
// otherwise the response text is re-tokenized and the longest common token prefix with the
// cached trunk is kept, so a token boundary that moves is decoded again, and nothing else.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llama.h"
#include "llama/batch.h"
#include "llama/context.h"
#include "llama/model.h"
#include "llama/sequence_pool.h"
#include "llama/tokenizer.h"
#include "stars/reward.h"

namespace stars {

struct JudgeOptions {
  std::string question = "Is the assistant's response helpful, harmless and on-topic?";
  std::string yes = " Yes";
  std::string no = " No";
  int32_t n_ctx = 8192;
  int32_t n_threads = 0;
};

class JudgeReward : public Reward {
 public:
  // `policy` may be null (no generation will pass token ids). Throws RewardError when `yes` or
  // `no` is not a single token of the judge's vocabulary.
  JudgeReward(std::shared_ptr<Model> judge, std::shared_ptr<Model> policy,
              const JudgeOptions& options);

  void Begin(const std::vector<std::string>& prompts) override;
  void Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) override;
  void Commit(int32_t prompt, const int32_t* tokens, int32_t n_tokens,
              std::string_view text) override;
  void Finish(int32_t prompt) override;
  int64_t TokensDecoded(int32_t prompt) const override;

  // From scratch, in fresh sequences: the reference the incremental path must match.
  std::vector<double> ScoreTexts(const std::vector<std::string>& prompts,
                                 const std::vector<std::string>& responses);
  // From scratch with policy token ids (shared vocabulary only).
  double ScorePolicyTokens(const std::string& prompt, const std::vector<llama_token>& tokens);

  bool shares_vocabulary() const { return shared_vocab_; }
  int32_t n_suffix_tokens() const { return static_cast<int32_t>(suffix_.size()); }
  int32_t n_prefix_tokens(const std::string& prompt) const {
    return static_cast<int32_t>(PrefixTokens(prompt).size());
  }
  // The judge's input for (prompt, response) as text, for inspection.
  std::string RenderText(const std::string& prompt, const std::string& response) const;

 private:
  struct Fork {
    llama_seq_id seq = -1;
    std::vector<llama_token> response;  // judge-vocab tokens of trunk + segment
  };
  struct Trunk {
    llama_seq_id seq = -1;
    int32_t n_prefix = 0;
    std::vector<llama_token> response;  // judge-vocab tokens of the accepted response
    std::string text;
    std::vector<Fork> forks;  // the last Score call's rows, kept so Commit can adopt one
    int64_t decoded = 0;
  };
  // Decodes queued (seq, tokens, start position) jobs in as few batches as fit; returns the
  // answer score of each job whose `score` flag is set, in order.
  struct Job {
    llama_seq_id seq;
    llama_pos pos;
    std::vector<llama_token> tokens;
    bool score;
  };
  std::vector<double> Run(std::vector<Job>& jobs);
  // Scores full inputs (prefix + response tokens; the suffix is appended) in fresh sequences.
  std::vector<double> ScoreFromScratch(std::vector<std::vector<llama_token>>& inputs);

  std::vector<llama_token> PrefixTokens(const std::string& prompt) const;
  std::vector<llama_token> ResponseTokens(std::string_view text, const Trunk* trunk,
                                          const int32_t* policy_tokens, int32_t n) const;
  void EnsureTrunks(const std::vector<int32_t>& prompts);
  void ReleaseForks(Trunk& trunk);

  std::shared_ptr<Model> judge_;
  Tokenizer tokenizer_;
  bool shared_vocab_ = false;
  JudgeOptions options_;
  std::string prefix_head_;          // rendered text before the prompt
  std::string prefix_tail_;          // rendered text between the prompt and the response
  std::vector<llama_token> suffix_;  // the question, end of turn, answer cue
  llama_token yes_ = LLAMA_TOKEN_NULL;
  llama_token no_ = LLAMA_TOKEN_NULL;
  std::unique_ptr<Context> context_;
  std::unique_ptr<SequencePool> pool_;
  std::unique_ptr<Batch> batch_;
  std::vector<std::string> prompts_;
  std::vector<Trunk> trunks_;
};

}  // namespace stars
