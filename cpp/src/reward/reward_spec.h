// Rewards from the CLI's spec strings, shared by the native stars-cli:
// "classifier:PATH[:LABEL]" (LABEL an output index, a label name of the GGUF, or "POS,NEG"),
// "judge:PATH", "judge:policy" (the policy's own weights) and "causal:PATH".
#pragma once

#include <memory>
#include <string>

#include "stars/params.h"
#include "stars/reward.h"

namespace stars {

class Model;

struct RewardSpecOptions {
  // The judge's question, answers and layout; empty: JudgeOptions' defaults.
  std::string question;
  std::string yes;
  std::string no;
  std::string layout;
  KvType kv_type = KvType::kF16;  // a judge's or a causal reward's KV cache
  int32_t policy_n_ctx = 4096;    // a KV-cached reward's context is this plus kTemplateRoom
  int32_t n_threads = 0;
  int32_t n_gpu_layers = 0;
};

// Room a KV-cached reward's context keeps beside the policy's n_ctx for its own template.
inline constexpr int32_t kTemplateRoom = 256;

// Builds the reward `spec` names for `policy`. Throws ParameterError for a malformed spec, an
// unknown kind (and "python:", which needs the Python package), judge options without a judge,
// or an unknown label; ModelNotFoundError / ModelLoadError for the reward's GGUF; RewardError
// when the file cannot serve as that reward.
std::shared_ptr<Reward> MakeReward(const std::string& spec, const std::shared_ptr<Model>& policy,
                                   const RewardSpecOptions& options);

}  // namespace stars
