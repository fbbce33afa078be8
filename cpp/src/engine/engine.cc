#include "stars/engine.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "algorithm/attempt_key.h"
#include "algorithm/round_cost.h"
#include "engine/generation.h"
#include "llama/context.h"
#include "llama/model.h"
#include "llama/tokenizer.h"
#include "stars/errors.h"

namespace stars {
namespace {

// The text a reward sees as the prompt: what the user wrote, not the rendered template.
std::string RewardText(const Prompt& prompt) {
  if (prompt.roles.empty()) return prompt.text;
  for (size_t i = prompt.roles.size(); i-- > 0;) {
    if (prompt.roles[i] == "user") return prompt.contents[i];
  }
  return prompt.contents.back();
}

}  // namespace

Engine::Engine(std::shared_ptr<Model> model, std::shared_ptr<Reward> reward,
               const EngineOptions& options)
    : model_(std::move(model)),
      reward_(std::move(reward)),
      options_(options),
      tokenizer_(std::make_unique<Tokenizer>(*model_)),
      costs_(std::make_unique<RoundCostModel>()) {
  if (options_.n_ctx < 16) {
    throw ParameterError("n_ctx must be at least 16, got " + std::to_string(options_.n_ctx));
  }
}

Engine::~Engine() = default;

Context& Engine::ContextFor(int32_t n_seq) {
  if (!context_ || context_->n_seq_max() < n_seq) {
    ContextOptions options;
    options.n_ctx = options_.n_ctx;
    options.n_seq_max = n_seq;
    options.n_threads = options_.n_threads;
    context_.reset();
    context_ = std::make_unique<Context>(model_, options);
  }
  return *context_;
}

std::vector<Result> Engine::Generate(const std::vector<Prompt>& prompts,
                                     const GenerationParams& params, const GenerateHooks& hooks) {
  params.Validate(reward_ != nullptr);
  const int32_t max_seq = static_cast<int32_t>(llama_max_parallel_sequences());
  const int32_t per_prompt = Generation::SequencesPerPrompt(params);
  if (per_prompt > max_seq) {
    throw ParameterError("candidates must be at most " + std::to_string(max_seq - 2) +
                         " (llama.cpp holds at most " + std::to_string(max_seq) +
                         " sequences), got " + std::to_string(params.candidates));
  }

  std::vector<PromptRun> runs(prompts.size());
  std::map<std::vector<llama_token>, uint64_t> occurrences;  // of each token list in this call
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Prompt& prompt = prompts[i];
    PromptRun& run = runs[i];
    run.index = static_cast<int32_t>(i);
    run.reward_text = RewardText(prompt);
    if (prompt.roles.empty()) {
      run.prompt_tokens = tokenizer_->Tokenize(prompt.text, true, false);
    } else {
      if (prompt.roles.size() != prompt.contents.size()) {
        throw ParameterError("prompt " + std::to_string(i) +
                             ": roles and contents differ in length");
      }
      std::vector<ChatMessage> messages;
      for (size_t m = 0; m < prompt.roles.size(); ++m) {
        messages.push_back({prompt.roles[m], prompt.contents[m]});
      }
      run.prompt_tokens = tokenizer_->TokenizeChat(tokenizer_->ApplyChatTemplate(messages));
    }
    if (run.prompt_tokens.empty()) {
      throw ParameterError("prompt " + std::to_string(i) + " is empty (no tokens)");
    }
    run.key = prompt.key ? PromptKeyOfId(*prompt.key)
                         : PromptKeyOfTokens(run.prompt_tokens, occurrences[run.prompt_tokens]++);
    const int64_t n_prompt = static_cast<int64_t>(run.prompt_tokens.size());
    if (n_prompt >= options_.n_ctx) {
      throw ContextLengthError(
          "prompt " + std::to_string(i) + " is " + std::to_string(n_prompt) +
          " tokens, longer than the context (n_ctx=" + std::to_string(options_.n_ctx) + ")");
    }
    run.reserved_cells = Generation::CellsPerPrompt(params, n_prompt);
    run.reserved_seqs = per_prompt;
    if (run.reserved_cells > options_.n_ctx) {
      throw ContextLengthError(
          "prompt " + std::to_string(i) + " (" + std::to_string(n_prompt) + " tokens) with " +
          "max_tokens=" + std::to_string(params.max_tokens) + " in mode '" + ModeName(params.mode) +
          "' needs up to " + std::to_string(run.reserved_cells) + " KV cells, more than n_ctx=" +
          std::to_string(options_.n_ctx) + ": raise n_ctx or lower max_tokens");
    }
  }
  if (runs.empty()) return {};

  std::lock_guard<std::mutex> lock(mutex_);
  const int32_t wave = std::max<int32_t>(
      1, std::min<int32_t>(static_cast<int32_t>(runs.size()), max_seq / per_prompt));
  Context& context = ContextFor(wave * per_prompt);
  if (reward_ != nullptr) {
    std::vector<std::string> texts;
    texts.reserve(runs.size());
    for (const PromptRun& run : runs) texts.push_back(run.reward_text);
    reward_->Begin(texts);
  }
  Generation generation(context, *tokenizer_, reward_.get(), params, hooks, *costs_);
  return generation.Run(std::move(runs));
}

}  // namespace stars
