// A causal instruct GGUF model asked a yes/no question about the response:
// reward = logit(yes) - logit(no) at the answer position, KV-cached per prompt
// (see KvCachedRewardImpl).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "llama.h"
#include "reward/kv_cached_reward.h"
#include "stars/rewards.h"

namespace stars {

class JudgeReward : public KvCachedRewardImpl {
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
