#include "reward/causal_reward.h"

#include <string>

#include "llama/gguf_metadata.h"
#include "stars/errors.h"

namespace stars {
namespace {

constexpr const char* kHeadWeight = "stars.reward.head.weight";
constexpr const char* kHeadBias = "stars.reward.head.bias";
constexpr const char* kHeadRow = "stars.reward.head.row";
// Without a chat template and a user template: a plain exchange.
constexpr const char* kPlainTemplate = "User: {prompt}\n\nAssistant: {response}";

// `format` with {prompt} and {response} replaced by the marks KvCachedRewardImpl splits at.
std::string MarkTemplate(const std::string& format) {
  std::string out = format;
  for (const auto& [placeholder, mark] :
       {std::pair<std::string, std::string>{"{prompt}", kPromptMark},
        {"{response}", kResponseMark}}) {
    const size_t at = out.find(placeholder);
    if (at == std::string::npos || out.find(placeholder, at + 1) != std::string::npos) {
      throw ParameterError("template must hold " + placeholder + " exactly once, got '" + format +
                           "'");
    }
    out.replace(at, placeholder.size(), mark);
  }
  return out;
}

}  // namespace

CausalReward::CausalReward(std::shared_ptr<Model> model, const std::string& path,
                           const std::shared_ptr<Model>& policy, const CausalOptions& options)
    : KvCachedRewardImpl(std::move(model), policy) {
  ResolveThreads(options.n_threads);
  const GgufMetadata metadata(path);
  std::optional<std::vector<float>> head = metadata.FloatArray(kHeadWeight);
  if (!head) {
    throw RewardError("'" + path + "' has no " + kHeadWeight +
                      ": it is not a causal reward model; convert one with `stars-cpp "
                      "convert-reward HF_DIR OUT.gguf`");
  }
  if (static_cast<int32_t>(head->size()) != model_->n_embd()) {
    throw RewardError("'" + path + "': " + kHeadWeight + " has " + std::to_string(head->size()) +
                      " values but the model's n_embd is " + std::to_string(model_->n_embd()));
  }
  head_ = std::move(*head);
  bias_ = metadata.Float(kHeadBias).value_or(0.0f);
  const int64_t row = metadata.Int(kHeadRow).value_or(-1);
  if (row != -1) {
    throw RewardError("'" + path + "': " + kHeadRow + "=" + std::to_string(row) +
                      " is not supported (only -1, the last token)");
  }

  if (!options.input_template.empty()) {
    SetLayout(MarkTemplate(options.input_template), "the template");
  } else if (model_->ChatTemplate(nullptr) != nullptr) {
    SetLayout(
        tokenizer_.ApplyChatTemplate({{"user", kPromptMark}, {"assistant", kResponseMark}}, false),
        "the reward model's chat template");
  } else {
    SetLayout(MarkTemplate(kPlainTemplate), "the plain template");
  }
  ContextOptions context_options;
  context_options.n_ctx = options.n_ctx;
  context_options.n_threads = options.n_threads;
  context_options.kv_type = options.kv_type;
  context_options.layout = options.kv_layout;
  // The hidden state of every token: llama.cpp outputs all rows when embeddings are on.
  context_options.embeddings = true;
  context_options.pooling = LLAMA_POOLING_TYPE_NONE;
  // Bounds the per-batch output buffer (n_batch rows of logits and hidden states).
  context_options.n_batch = 512;
  Open(context_options);
}

double CausalReward::Readout(const Context& context, int32_t batch_index) const {
  const float* hidden = context.TokenEmbeddings(batch_index);
  double score = bias_;
  for (size_t i = 0; i < head_.size(); ++i) score += static_cast<double>(head_[i]) * hidden[i];
  return score;
}

}  // namespace stars
