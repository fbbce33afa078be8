// A reward read off a causal GGUF model at the last token of a rendered input:
//   prefix (template head, prompt, template middle) + response + suffix.
// Per prompt it keeps a trunk sequence (prefix + accepted response) in its own KV cache. A
// candidate forks the trunk and decodes only its segment and the suffix. When the model shares
// the policy's vocabulary, policy token ids pass straight through; otherwise the response text
// is re-tokenized and the longest common token prefix with the cached trunk is kept, so a token
// boundary that moves is decoded again, and nothing else.
//
// The trunks and forks share one context. When a round needs more cells or sequence ids than
// are free, the least recently used trunks are evicted (rebuilt, prefix and accepted response,
// when their prompt comes back), and a round too large for the whole context is scored in
// groups of rows. Either way tokens are decoded again, so size n_ctx to avoid it.
//
// In the isolated layout each sequence is a KV stream of its own, so that a row's score does not
// depend on the rows beside it (a fork copies its trunk's stream). The context is then sized
// from what the calls need, streams and cells per stream, and made again larger (by doubling)
// when a call needs more; its trunks are rebuilt as their prompts come back. A rebuilt trunk
// holds the same values as the one it replaces, so this changes what is decoded, not a score.
//
// Subclasses choose the rendering (SetLayout) and the readout at the scored row (Readout):
// JudgeReward reads logit(yes) - logit(no), CausalReward a linear head on the hidden state.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "llama.h"
#include "llama/batch_runner.h"
#include "llama/context.h"
#include "llama/sequence_pool.h"
#include "llama/tokenizer.h"
#include "stars/model.h"
#include "stars/reward.h"
#include "stars/rewards.h"

namespace stars {

// Placeholders a template passes through untouched; the rendered text is split at them so the
// prompt and the response can be tokenized and cached on their own.
inline constexpr const char* kPromptMark = "\x01STARS_PROMPT\x01";
inline constexpr const char* kResponseMark = "\x01STARS_RESPONSE\x01";

// The implementation of the public KvCachedReward.
class KvCachedRewardImpl : public KvCachedReward {
 public:
  void Begin(int32_t prompt, std::string_view text) override;
  void Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) override;
  void Commit(int32_t prompt, const int32_t* tokens, int32_t n_tokens,
              std::string_view text) override;
  void Finish(int32_t prompt) override;
  int64_t TokensDecoded(int32_t prompt) const override;

  std::vector<double> ScoreTexts(const std::vector<std::string>& prompts,
                                 const std::vector<std::string>& responses) override;
  std::vector<llama_token> InputTokens(const std::string& prompt,
                                       const std::string& response) const override;
  double ScorePolicyTokens(const std::string& prompt,
                           const std::vector<llama_token>& tokens) override;
  bool shares_vocabulary() const override { return shared_vocab_; }
  int32_t n_prefix_tokens(const std::string& prompt) const override {
    return static_cast<int32_t>(PrefixTokens(prompt).size());
  }
  int32_t n_suffix_tokens() const override { return static_cast<int32_t>(suffix_.size()); }
  std::string RenderText(const std::string& prompt, const std::string& response) const override;

 protected:
  // `policy` may be null (no generation will pass token ids).
  KvCachedRewardImpl(std::shared_ptr<Model> model, const std::shared_ptr<Model>& policy);

  // `rendered` holds kPromptMark and kResponseMark once each, in that order. Throws
  // ChatTemplateError naming `what` otherwise.
  void SetLayout(const std::string& rendered, const std::string& what);
  // Creates the context; call once, after SetLayout. Isolated: `options.n_ctx` is the most cells
  // one row may hold, and the context starts small.
  void Open(ContextOptions options);
  // The reward at output row `batch_index` of the last decode.
  virtual double Readout(const Context& context, int32_t batch_index) const = 0;

  std::shared_ptr<Model> model_;
  Tokenizer tokenizer_;

 private:
  // Sequence ids of the context: a trunk per request and a fork per candidate, for several
  // requests at once.
  static constexpr int32_t kSequences = 64;
  // Finish without the lock.
  void Release(int32_t prompt);

  struct Fork {
    llama_seq_id seq = -1;
    std::vector<llama_token> response;  // model-vocab tokens of trunk + segment
  };
  struct Trunk {
    llama_seq_id seq = -1;
    std::vector<llama_token> prefix;    // template head, prompt, template middle; kept for rebuilds
    std::vector<llama_token> response;  // model-vocab tokens of the accepted response
    std::string text;
    std::vector<Fork> forks;  // the last Score call's rows, kept so Commit can adopt one
    int64_t decoded = 0;
    uint64_t last_used = 0;  // Score/Commit clock, for eviction
    int32_t n_prefix() const { return static_cast<int32_t>(prefix.size()); }
    // Cells the trunk holds when live (or needs when rebuilt): prefix and accepted response.
    int64_t cells() const { return n_prefix() + static_cast<int64_t>(response.size()); }
  };
  // Tokens of one sequence from a start position; `score` reads the reward at the last one.
  struct Job {
    llama_seq_id seq;
    llama_pos pos;
    std::vector<llama_token> tokens;
    bool score;
  };
  // Decodes the jobs in as few batches as fit (a long job spans batches); returns the reward
  // of each job whose `score` flag is set, in order.
  std::vector<double> Run(std::vector<Job>& jobs);
  // Scores full inputs (prefix + response tokens; the suffix is appended) in fresh sequences.
  std::vector<double> ScoreFromScratch(std::vector<std::vector<llama_token>>& inputs);

  std::vector<llama_token> PrefixTokens(const std::string& prompt) const;
  std::vector<llama_token> ResponseTokens(std::string_view text, const Trunk* trunk,
                                          const int32_t* policy_tokens, int32_t n) const;
  // Decodes the trunk (prefix and accepted response) of each prompt that has none.
  void EnsureTrunks(const std::vector<int32_t>& prompts);
  // Tokenizes the prompt's prefix once. Throws RewardError when it is empty.
  Trunk& PlannedTrunk(int32_t prompt);
  void ReleaseForks(Trunk& trunk);
  // Frees `cells` cells and `seqs` sequence ids by releasing least recently used trunks outside
  // `keep`, then the forks of those in it. Throws ContextLengthError when even that is short.
  void MakeRoom(int64_t cells, int32_t seqs, const std::vector<int32_t>& keep);
  // Whether `cells` more cells in `seqs` more sequences fit the whole context (isolated: the
  // sequences alone, each stream holding any row).
  bool Fits(int64_t cells, int32_t seqs, int32_t free_seqs) const;
  // Isolated: makes the context hold `seqs` sequences of `cells` cells at least, made again
  // larger when it does not (every trunk then goes, rebuilt when its prompt comes back). Throws
  // ContextLengthError for more cells than options' n_ctx. Shared: nothing.
  void Reserve(int32_t seqs, int64_t cells);
  void MakeContext(int32_t seqs, int32_t cells);

  bool shared_vocab_ = false;
  std::string prefix_head_;          // rendered text before the prompt
  std::string prefix_tail_;          // rendered text between the prompt and the response
  std::string suffix_text_;          // rendered text after the response
  std::vector<llama_token> suffix_;  // ... and its tokens
  ContextOptions options_;           // as Open got them
  bool isolated_ = false;
  std::unique_ptr<Context> context_;
  std::unique_ptr<SequencePool> pool_;
  std::unique_ptr<BatchRunner> runner_;
  std::vector<std::string> prompts_;  // by prompt id (Begin)
  std::vector<Trunk> trunks_;         // by prompt id
  // Serializes every public call: a standalone reward may be called from several threads while
  // an Engine drives it from its loop thread, and they share one llama context.
  mutable std::mutex mutex_;
  uint64_t clock_ = 0;
};

}  // namespace stars
