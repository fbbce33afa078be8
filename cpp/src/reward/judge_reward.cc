#include "reward/judge_reward.h"

#include <string>
#include <vector>

#include "stars/errors.h"

namespace stars {
namespace {

constexpr const char* kIntro = "Read this exchange between a user and an AI assistant";
constexpr const char* kUser = "User: ";
constexpr const char* kMiddle = "\n\nAssistant: ";
constexpr const char* kAnswerCue = "Answer:";

llama_token SingleToken(const Tokenizer& tokenizer, const std::string& text, const char* name,
                        const std::string& description) {
  const std::vector<llama_token> tokens = tokenizer.Tokenize(text, false, false);
  if (tokens.size() != 1) {
    throw RewardError("the judge '" + description + "' has no single token for " + name + "='" +
                      text + "' (it tokenizes to " + std::to_string(tokens.size()) +
                      " tokens): pass " + name + "= a string that is one token of its vocabulary");
  }
  return tokens[0];
}

}  // namespace

JudgeReward::JudgeReward(std::shared_ptr<Model> judge, const std::shared_ptr<Model>& policy,
                         const JudgeOptions& options)
    : KvCachedRewardImpl(std::move(judge), policy) {
  ResolveThreads(options.n_threads);
  yes_ = SingleToken(tokenizer_, options.yes, "yes", model_->description());
  no_ = SingleToken(tokenizer_, options.no, "no", model_->description());
  if (yes_ == no_) throw RewardError("yes and no are the same token of the judge's vocabulary");

  const std::string ask = options.question + " Answer Yes or No.";
  const std::string exchange =
      std::string(kUser) + kPromptMark + kMiddle + std::string(kResponseMark);
  const std::string content =
      options.layout == JudgeLayout::kQuestionFirst
          ? std::string(kIntro) + ", then answer: " + ask + "\n\n" + exchange
          : std::string(kIntro) + ".\n\n" + exchange + "\n\n" + ask;
  if (model_->ChatTemplate(nullptr) != nullptr) {
    SetLayout(tokenizer_.ApplyChatTemplate({{"user", content}}) + kAnswerCue,
              "the judge's chat template");
  } else {
    SetLayout(content + "\n" + kAnswerCue, "the judge's prompt");  // a base model: plain text
  }
  ContextOptions context_options;
  context_options.n_ctx = options.n_ctx;
  context_options.n_threads = options.n_threads;
  context_options.kv_type = options.kv_type;
  context_options.layout = options.kv_layout;
  Open(context_options);
}

double JudgeReward::Readout(const Context& context, int32_t batch_index) const {
  const float* logits = context.Logits(batch_index);
  return static_cast<double>(logits[yes_]) - static_cast<double>(logits[no_]);
}

}  // namespace stars
