// The three GGUF rewards, and rewards from the CLI's spec strings: interfaces and factories that
// hide how each reward drives llama.cpp. Every reward returned serializes its own calls, so one
// may also be scored from several threads while an Engine drives it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stars/model.h"
#include "stars/params.h"
#include "stars/reward.h"

namespace stars {

// What the three GGUF rewards offer beside the batched protocol: scoring texts on their own.
class GgufReward : public Reward {
 public:
  // Scores (prompt, response) pairs from scratch, each in a fresh sequence, outside a generation
  // call; for a KV-cached reward it is the reference its incremental path matches. Throws
  // ParameterError when the two differ in length, ContextLengthError when a KV-cached reward's
  // row does not fit its context (a classifier cuts rows to fit), DecodeError when llama.cpp
  // fails.
  virtual std::vector<double> ScoreTexts(const std::vector<std::string>& prompts,
                                         const std::vector<std::string>& responses) = 0;

  // The reward model's input for (prompt, response) as ScoreTexts decodes it, in its own
  // vocabulary's token ids.
  virtual std::vector<int32_t> InputTokens(const std::string& prompt,
                                           const std::string& response) const = 0;
};

// A sequence classifier or reranker (MakeClassifierReward).
class ClassifierReward : public GgufReward {
 public:
  // True when a row is the pair (prompt, response), as a reranker reads it; false when the
  // classifier reads the response alone.
  virtual bool pair() const = 0;
};

// A reward read off a causal model and KV-cached per prompt (MakeJudgeReward,
// MakeCausalReward). Its input is a prefix (template head, prompt, template middle), the
// response, and a suffix (the template's tail).
class KvCachedReward : public GgufReward {
 public:
  // Like ScoreTexts for one row whose response is given as policy token ids. Throws
  // ParameterError unless the reward was made with a policy that shares its vocabulary.
  virtual double ScorePolicyTokens(const std::string& prompt,
                                   const std::vector<int32_t>& tokens) = 0;

  // True when the policy given at creation has this model's vocabulary, so that policy token
  // ids pass straight through instead of the response text being tokenized again.
  virtual bool shares_vocabulary() const = 0;

  // Tokens of the prefix for `prompt`, and of the suffix: what a candidate costs beside its
  // segment is the suffix.
  virtual int32_t n_prefix_tokens(const std::string& prompt) const = 0;
  virtual int32_t n_suffix_tokens() const = 0;

  // The model's input for (prompt, response) as text.
  virtual std::string RenderText(const std::string& prompt, const std::string& response) const = 0;
};

struct JudgeOptions {
  std::string question = "Is the assistant's response helpful, harmless and on-topic?";
  // Where the question stands (params.h): question_first, or question_last.
  JudgeLayout layout = JudgeLayout::kQuestionFirst;
  std::string yes = " Yes";
  std::string no = " No";
  // Isolated: the most cells one row (template, prompt, response) holds; shared: every row's.
  int32_t n_ctx = 8192;
  int32_t n_threads = 0;
  KvType kv_type = KvType::kF16;
  // Isolated: a row's score does not depend on the rows beside it (params.h).
  KvLayout kv_layout = KvLayout::kIsolated;
};

// A causal instruct model asked a yes/no question about the response: reward = logit(yes) -
// logit(no) at the answer position. Each prompt's rubric, prompt and accepted response stay in
// the judge's KV cache; a candidate costs its segment plus the template's closing tokens.
// `policy` may be null (then no generation passes token ids) or `judge` itself (a self-judge,
// one context on the shared weights). Throws RewardError when `yes` or `no` is not one token of
// the judge's vocabulary, ChatTemplateError for a template that alters its input, and Error
// when llama.cpp cannot create the context (its logged reason included).
std::shared_ptr<KvCachedReward> MakeJudgeReward(std::shared_ptr<Model> judge,
                                                const std::shared_ptr<Model>& policy,
                                                const JudgeOptions& options);

struct ClassifierOptions {
  // One index: the score is that output. Two: out[labels[0]] - out[labels[1]].
  std::vector<int32_t> labels = {0};
  // -1: decide from the model (a "rerank" template or a single output means a reranker, which
  // reads (prompt, response) pairs); 0: the response alone; 1: (prompt, response) pairs.
  int32_t pair = -1;
  int32_t n_ctx = 0;  // tokens per row; 0: the model's training context
  int32_t n_threads = 0;
  // Isolated: each row is encoded alone, so that its score does not depend on the rows beside
  // it (batched rows differ in their last bits); shared: several rows per decode.
  KvLayout kv_layout = KvLayout::kIsolated;
};

// A GGUF sequence classifier or reranker (RANK pooling). Throws RewardError when the GGUF has
// no classification head, and ParameterError for a label out of range.
std::shared_ptr<ClassifierReward> MakeClassifierReward(std::shared_ptr<Model> model,
                                                       const ClassifierOptions& options);

struct CausalOptions {
  // "": the model's chat template (user = prompt, assistant = response); else a format with
  // "{prompt}" and "{response}" once each, e.g. "Q: {prompt}\nA: {response}".
  std::string input_template;
  int32_t n_ctx = 8192;  // as JudgeOptions::n_ctx
  int32_t n_threads = 0;
  // An F32 KV cache: F16 keys and values alone move scores by about 1e-3 relative.
  KvType kv_type = KvType::kF16;
  KvLayout kv_layout = KvLayout::kIsolated;
};

// A decoder with a scalar head stored in the GGUF's metadata (`stars-cpp convert-reward`).
// `path` is the file `model` was loaded from. Throws RewardError when the head is missing or
// its length is not n_embd, and ParameterError for a bad template.
std::shared_ptr<KvCachedReward> MakeCausalReward(std::shared_ptr<Model> model,
                                                 const std::string& path,
                                                 const std::shared_ptr<Model>& policy,
                                                 const CausalOptions& options);

// Options of MakeReward, from the front ends' settings (param_spec.h, RewardOptionsOf).
struct RewardSpecOptions {
  // A judge's question, answers and layout; its context, threads and cache come from below.
  JudgeOptions judge;
  KvType kv_type = KvType::kF16;  // a judge's or a causal reward's KV cache
  KvLayout kv_layout = KvLayout::kIsolated;
  int32_t policy_n_ctx = 4096;  // a KV-cached reward's context is this plus kTemplateRoom
  int32_t n_threads = 0;
  int32_t n_gpu_layers = 0;
};

// Room a KV-cached reward's context keeps beside the policy's n_ctx for its own template.
inline constexpr int32_t kTemplateRoom = 256;

// Builds the reward a CLI spec names for `policy`: "classifier:PATH[:LABEL]" (LABEL an output
// index, a label name of the GGUF, or "POS,NEG"), "judge:PATH", "judge:policy" (the policy's
// own weights), "causal:PATH" or "probe:PATH" (a probe file fitted on `policy`, stars/probe.h).
// Throws ParameterError for a malformed spec, an unknown kind (and "python:", which needs the
// Python package), judge options without a judge, or an unknown label; ModelNotFoundError /
// ModelLoadError for the reward's GGUF; and what the factories above throw.
std::shared_ptr<GgufReward> MakeReward(const std::string& spec,
                                       const std::shared_ptr<Model>& policy,
                                       const RewardSpecOptions& options);

}  // namespace stars
