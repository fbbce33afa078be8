// A probe as a reward (stars/probe.h): the head of a probe file over the policy's hidden state at
// a row's last decoded token. Rows that carry the engine's hidden state cost the head alone;
// others are decoded from scratch by a feature extractor on the policy's weights, made on first
// need, so that a probe the engine feeds holds no context of its own.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "llama/tokenizer.h"
#include "reward/probe_head.h"
#include "stars/probe.h"

namespace stars {

class ProbeRewardImpl : public ProbeReward {
 public:
  ProbeRewardImpl(const std::string& path, std::shared_ptr<Model> policy,
                  const ProbeOptions& options);

  void Begin(int32_t prompt, std::string_view text) override;
  void BeginTokens(int32_t prompt, std::string_view text,
                   const std::vector<int32_t>& tokens) override;
  void Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) override;
  void Finish(int32_t prompt) override;
  int64_t TokensDecoded(int32_t prompt) const override;

  std::vector<double> ScoreTexts(const std::vector<std::string>& prompts,
                                 const std::vector<std::string>& responses) override;
  std::vector<int32_t> InputTokens(const std::string& prompt,
                                   const std::string& response) const override;

  int32_t layer() const override { return layer_; }
  int32_t n_embd() const override { return head_.n_in(); }
  double ScoreFeatures(const float* features) const override { return head_.Score(features); }
  std::vector<int32_t> PromptTokensOf(const std::string& text) const override;
  const Model& policy() const override { return *policy_; }

 private:
  struct PromptState {
    std::vector<int32_t> tokens;
    int64_t decoded = 0;
  };

  // Features of `inputs` from scratch (the extractor made on first need). Holds mutex_.
  std::vector<float> Extract(const std::vector<std::vector<int32_t>>& inputs);

  std::string path_;
  std::shared_ptr<Model> policy_;
  ProbeOptions options_;
  bool chat_;  // options_.chat, and the policy has a chat template
  int32_t layer_;
  ProbeHead head_;
  std::unique_ptr<FeatureExtractor> extractor_;
  std::map<int32_t, PromptState> prompts_;
  mutable std::mutex mutex_;
};

}  // namespace stars
