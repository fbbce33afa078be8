#include "reward/probe_reward.h"

#include <sstream>
#include <utility>

#include "llama/hidden_states.h"
#include "stars/errors.h"

namespace stars {
namespace {

std::string Hex(uint64_t value) {
  std::ostringstream out;
  out << std::hex << value;
  return out.str();
}

std::string Describe(const PolicyIdentity& id) {
  return id.architecture + ", n_embd " + std::to_string(id.n_embd) + ", " +
         std::to_string(id.n_layer) + " layers, token_embd.weight FNV-1a " +
         Hex(id.token_embd_hash);
}

// The probe's file after checking it was fitted on `policy`.
ProbeFile ReadFor(const std::string& path, const Model& policy) {
  ProbeFile probe = ReadProbeFile(path);
  const PolicyIdentity actual = IdentifyPolicy(policy);
  const PolicyIdentity& fitted = probe.policy;
  if (fitted.architecture != actual.architecture || fitted.n_embd != actual.n_embd ||
      fitted.n_layer != actual.n_layer || fitted.token_embd_hash != actual.token_embd_hash) {
    throw ModelLoadError("probe file '" + path + "' was fitted on another model" +
                         (fitted.name.empty() ? "" : ", '" + fitted.name + "',") + " (" +
                         Describe(fitted) + ") than the policy '" + policy.path() + "' (" +
                         Describe(actual) + ")");
  }
  return probe;
}

}  // namespace

std::vector<int32_t> PromptTokens(const Model& model, const std::string& text,
                                  const std::vector<ChatMessage>& messages) {
  // As the engine renders a request's prompt (PrepareRun).
  const Tokenizer tokenizer(model);
  if (messages.empty()) return tokenizer.Tokenize(text, true, false);
  return tokenizer.TokenizeChat(tokenizer.ApplyChatTemplate(messages));
}

std::vector<int32_t> ProbeInput(const std::vector<int32_t>& prompt,
                                const std::vector<int32_t>& response) {
  std::vector<int32_t> input = prompt;
  if (response.size() > 1) input.insert(input.end(), response.begin(), response.end() - 1);
  return input;
}

ProbeRewardImpl::ProbeRewardImpl(const std::string& path, std::shared_ptr<Model> policy,
                                 const ProbeOptions& options)
    : path_(path),
      policy_(std::move(policy)),
      options_(options),
      chat_(options.chat && policy_->ChatTemplate(nullptr) != nullptr),
      layer_(0),
      head_([&] {
        ProbeFile probe = ReadFor(path, *policy_);
        layer_ = probe.layer;
        return ProbeHead(std::move(probe.head));
      }()) {
  CheckFeatureLayer(*policy_, layer_);
}

std::vector<int32_t> ProbeRewardImpl::PromptTokensOf(const std::string& text) const {
  if (chat_) return PromptTokens(*policy_, "", {{"user", text}});
  return PromptTokens(*policy_, text, {});
}

void ProbeRewardImpl::Begin(int32_t prompt, std::string_view text) {
  std::vector<int32_t> tokens = PromptTokensOf(std::string(text));
  std::lock_guard<std::mutex> lock(mutex_);
  prompts_[prompt] = PromptState{std::move(tokens), 0};
}

void ProbeRewardImpl::BeginTokens(int32_t prompt, std::string_view /*text*/,
                                  const std::vector<int32_t>& tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  prompts_[prompt] = PromptState{tokens, 0};
}

void ProbeRewardImpl::Finish(int32_t prompt) {
  std::lock_guard<std::mutex> lock(mutex_);
  prompts_.erase(prompt);
}

int64_t ProbeRewardImpl::TokensDecoded(int32_t prompt) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = prompts_.find(prompt);
  return it == prompts_.end() ? 0 : it->second.decoded;
}

std::vector<float> ProbeRewardImpl::Extract(const std::vector<std::vector<int32_t>>& inputs) {
  if (extractor_ == nullptr) {
    extractor_ = MakeFeatureExtractor(policy_, layer_, options_.n_threads, options_.kv_type);
  }
  return extractor_->Extract(inputs);
}

void ProbeRewardImpl::Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) {
  std::lock_guard<std::mutex> lock(mutex_);
  scores->assign(rows.size(), 0.0);
  std::vector<std::vector<int32_t>> inputs;
  std::vector<size_t> decoded_rows;
  for (size_t i = 0; i < rows.size(); ++i) {
    const RewardRow& row = rows[i];
    if (row.features != nullptr) {
      (*scores)[i] = head_.Score(row.features);
      continue;
    }
    const auto it = prompts_.find(row.prompt);
    if (it == prompts_.end()) {
      throw RewardError("probe '" + path_ + "': a row of prompt " + std::to_string(row.prompt) +
                        " that Begin never named");
    }
    std::vector<int32_t> response(row.trunk_tokens, row.trunk_tokens + row.n_trunk_tokens);
    response.insert(response.end(), row.segment_tokens, row.segment_tokens + row.n_segment_tokens);
    inputs.push_back(ProbeInput(it->second.tokens, response));
    it->second.decoded += static_cast<int64_t>(inputs.back().size());
    decoded_rows.push_back(i);
  }
  if (inputs.empty()) return;
  const std::vector<float> features = Extract(inputs);
  const size_t n_embd = static_cast<size_t>(head_.n_in());
  for (size_t k = 0; k < decoded_rows.size(); ++k) {
    (*scores)[decoded_rows[k]] = head_.Score(features.data() + k * n_embd);
  }
}

std::vector<int32_t> ProbeRewardImpl::InputTokens(const std::string& prompt,
                                                  const std::string& response) const {
  return ProbeInput(PromptTokensOf(prompt), policy_->Tokenize(response, false, false));
}

std::vector<double> ProbeRewardImpl::ScoreTexts(const std::vector<std::string>& prompts,
                                                const std::vector<std::string>& responses) {
  if (prompts.size() != responses.size()) {
    throw ParameterError("prompts and responses differ in length (" +
                         std::to_string(prompts.size()) + " and " +
                         std::to_string(responses.size()) + ")");
  }
  std::vector<std::vector<int32_t>> inputs;
  inputs.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i)
    inputs.push_back(InputTokens(prompts[i], responses[i]));
  std::lock_guard<std::mutex> lock(mutex_);
  const std::vector<float> features = Extract(inputs);
  std::vector<double> scores(prompts.size());
  const size_t n_embd = static_cast<size_t>(head_.n_in());
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = head_.Score(features.data() + i * n_embd);
  return scores;
}

std::shared_ptr<ProbeReward> MakeProbeReward(const std::string& path,
                                             const std::shared_ptr<Model>& policy,
                                             const ProbeOptions& options) {
  if (policy == nullptr) throw ParameterError("reward", "a probe needs the policy model");
  return std::make_shared<ProbeRewardImpl>(path, policy, options);
}

}  // namespace stars
