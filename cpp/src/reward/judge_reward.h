// A causal instruct GGUF model asked a yes/no question about the response:
// reward = logit(yes) - logit(no) at the answer position, KV-cached per prompt
// (see KvCachedReward).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "llama.h"
#include "reward/kv_cached_reward.h"

namespace stars {

// Where the question stands. kQuestionFirst asks it before the exchange, so that per candidate
// the judge decodes only the segment, the template's closing tokens and the answer cue;
// kQuestionLast asks it after the response, which costs the whole question per candidate.
enum class JudgeLayout { kQuestionFirst, kQuestionLast };
// "question_first" / "question_last"; throws ParameterError naming `layout` otherwise.
JudgeLayout ParseJudgeLayout(const std::string& name);

struct JudgeOptions {
  std::string question = "Is the assistant's response helpful, harmless and on-topic?";
  JudgeLayout layout = JudgeLayout::kQuestionFirst;
  std::string yes = " Yes";
  std::string no = " No";
  int32_t n_ctx = 8192;
  int32_t n_threads = 0;
  KvType kv_type = KvType::kF16;
};

class JudgeReward : public KvCachedReward {
 public:
  // `policy` may be null (no generation will pass token ids). Throws RewardError when `yes` or
  // `no` is not a single token of the judge's vocabulary.
  JudgeReward(std::shared_ptr<Model> judge, const std::shared_ptr<Model>& policy,
              const JudgeOptions& options);

 private:
  double Readout(const Context& context, int32_t batch_index) const override;

  llama_token yes_ = LLAMA_TOKEN_NULL;
  llama_token no_ = LLAMA_TOKEN_NULL;
};

}  // namespace stars
