// A decoder language model with a scalar head (LlamaForSequenceClassification and kin,
// converted by `stars-cpp convert-reward`): reward = head . h + bias, where h is the final
// hidden state of the input's last token. llama.cpp runs the backbone with embeddings on and
// pooling NONE; the head lives in the GGUF's metadata (stars.reward.head.*), which llama.cpp
// ignores. KV-cached per prompt like the judge (see KvCachedRewardImpl).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reward/kv_cached_reward.h"
#include "stars/rewards.h"

namespace stars {

class CausalReward : public KvCachedRewardImpl {
 public:
  // `path` is the GGUF `model` was loaded from (the head is read from its metadata). Throws
  // RewardError when the head is missing or its length is not n_embd, ParameterError for a
  // template without both placeholders.
  CausalReward(std::shared_ptr<Model> model, const std::string& path,
               const std::shared_ptr<Model>& policy, const CausalOptions& options);

 private:
  double Readout(const Context& context, int32_t batch_index) const override;

  std::vector<float> head_;
  double bias_ = 0.0;
};

}  // namespace stars
