#include "reward/judge_reward.h"

#include <algorithm>
#include <string>

#include "stars/errors.h"

namespace stars {
namespace {

// Placeholders that a chat template passes through untouched; the rendered text is split at
// them so the prompt and the response can be tokenized and cached on their own.
constexpr const char* kPromptMark = "\x01STARS_PROMPT\x01";
constexpr const char* kResponseMark = "\x01STARS_RESPONSE\x01";
constexpr const char* kHeader = "Read this exchange between a user and an AI assistant.\n\nUser: ";
constexpr const char* kMiddle = "\n\nAssistant: ";
constexpr const char* kAnswerCue = "Answer:";
// From-scratch rows decoded together (each in its own sequence).
constexpr size_t kScratchRows = 32;

size_t CommonPrefix(const std::vector<llama_token>& a, const std::vector<llama_token>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

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

JudgeReward::JudgeReward(std::shared_ptr<Model> judge, std::shared_ptr<Model> policy,
                         const JudgeOptions& options)
    : judge_(std::move(judge)), tokenizer_(*judge_), options_(options) {
  yes_ = SingleToken(tokenizer_, options_.yes, "yes", judge_->description());
  no_ = SingleToken(tokenizer_, options_.no, "no", judge_->description());
  if (yes_ == no_) throw RewardError("yes and no are the same token of the judge's vocabulary");
  shared_vocab_ = policy != nullptr && tokenizer_.SameVocabulary(Tokenizer(*policy));

  const std::string footer = "\n\n" + options_.question + " Answer Yes or No.";
  const std::string content = kHeader + std::string(kPromptMark) + kMiddle + kResponseMark + footer;
  std::string rendered;
  if (judge_->ChatTemplate(nullptr) != nullptr) {
    rendered = tokenizer_.ApplyChatTemplate({{"user", content}}) + kAnswerCue;
  } else {
    rendered = content + "\n" + kAnswerCue;  // a base model: plain text
  }
  const size_t at_prompt = rendered.find(kPromptMark);
  const size_t at_response = rendered.find(kResponseMark);
  if (at_prompt == std::string::npos || at_response == std::string::npos) {
    throw ChatTemplateError(
        "the judge's chat template altered its input: cannot place the "
        "prompt and the response");
  }
  prefix_head_ = rendered.substr(0, at_prompt);
  const size_t after_prompt = at_prompt + std::string(kPromptMark).size();
  prefix_tail_ = rendered.substr(after_prompt, at_response - after_prompt);
  suffix_ = tokenizer_.Tokenize(rendered.substr(at_response + std::string(kResponseMark).size()),
                                false, true);

  ContextOptions context_options;
  context_options.n_ctx = options_.n_ctx;
  context_options.n_seq_max = static_cast<int32_t>(llama_max_parallel_sequences());
  context_options.n_threads = options_.n_threads;
  context_ = std::make_unique<Context>(judge_, context_options);
  pool_ = std::make_unique<SequencePool>(*context_);
  batch_ = std::make_unique<Batch>(context_->n_batch());
}

std::string JudgeReward::RenderText(const std::string& prompt, const std::string& response) const {
  return prefix_head_ + prompt + prefix_tail_ + response + tokenizer_.Detokenize(suffix_);
}

std::vector<llama_token> JudgeReward::PrefixTokens(const std::string& prompt) const {
  std::vector<llama_token> tokens = tokenizer_.TokenizeChat(prefix_head_);
  const std::vector<llama_token> user = tokenizer_.Tokenize(prompt, false, false);
  const std::vector<llama_token> tail = tokenizer_.Tokenize(prefix_tail_, false, true);
  tokens.insert(tokens.end(), user.begin(), user.end());
  tokens.insert(tokens.end(), tail.begin(), tail.end());
  return tokens;
}

std::vector<llama_token> JudgeReward::ResponseTokens(std::string_view text, const Trunk* trunk,
                                                     const int32_t* policy_tokens,
                                                     int32_t n) const {
  if (shared_vocab_ && trunk != nullptr) {
    std::vector<llama_token> tokens = trunk->response;
    tokens.insert(tokens.end(), policy_tokens, policy_tokens + n);
    return tokens;
  }
  return tokenizer_.Tokenize(std::string(text), false, false);
}

void JudgeReward::Begin(const std::vector<std::string>& prompts) {
  pool_->Clear();
  prompts_ = prompts;
  trunks_.assign(prompts.size(), Trunk{});
}

int64_t JudgeReward::TokensDecoded(int32_t prompt) const { return trunks_.at(prompt).decoded; }

void JudgeReward::ReleaseForks(Trunk& trunk) {
  for (Fork& fork : trunk.forks) {
    if (fork.seq >= 0) pool_->Release(fork.seq);
  }
  trunk.forks.clear();
}

std::vector<double> JudgeReward::Run(std::vector<Job>& jobs) {
  std::vector<double> scores;
  std::vector<int32_t> outputs;  // batch index of each scored job of the current batch
  auto flush = [&] {
    if (batch_->empty()) return;
    context_->Decode(*batch_);
    for (int32_t index : outputs) {
      const float* logits = context_->Logits(index);
      scores.push_back(static_cast<double>(logits[yes_]) - static_cast<double>(logits[no_]));
    }
    outputs.clear();
    batch_->Clear();
  };
  batch_->Clear();
  for (Job& job : jobs) {
    if (job.tokens.empty()) continue;
    if (static_cast<int32_t>(job.tokens.size()) > batch_->capacity()) {
      throw ContextLengthError(
          "the judge's input of " + std::to_string(job.tokens.size()) +
          " tokens is longer than its context (n_ctx=" + std::to_string(context_->n_ctx()) + ")");
    }
    if (batch_->size() + static_cast<int32_t>(job.tokens.size()) > batch_->capacity()) flush();
    const int32_t last = static_cast<int32_t>(job.tokens.size()) - 1;
    for (int32_t i = 0; i <= last; ++i) {
      const int32_t index =
          batch_->Add(job.tokens[i], job.pos + i, job.seq, job.score && i == last);
      if (index >= 0) outputs.push_back(index);
    }
  }
  flush();
  return scores;
}

void JudgeReward::EnsureTrunks(const std::vector<int32_t>& prompts) {
  std::vector<Job> jobs;
  for (int32_t prompt : prompts) {
    Trunk& trunk = trunks_.at(prompt);
    if (trunk.seq >= 0) continue;
    trunk.seq = pool_->Acquire();
    std::vector<llama_token> prefix = PrefixTokens(prompts_.at(prompt));
    trunk.n_prefix = static_cast<int32_t>(prefix.size());
    trunk.decoded += trunk.n_prefix;
    jobs.push_back({trunk.seq, 0, std::move(prefix), false});
  }
  Run(jobs);
}

void JudgeReward::Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) {
  std::vector<int32_t> prompts;
  for (const RewardRow& row : rows) prompts.push_back(row.prompt);
  std::sort(prompts.begin(), prompts.end());
  prompts.erase(std::unique(prompts.begin(), prompts.end()), prompts.end());
  for (int32_t prompt : prompts) ReleaseForks(trunks_.at(prompt));
  EnsureTrunks(prompts);

  std::vector<Job> jobs;
  jobs.reserve(rows.size());
  for (const RewardRow& row : rows) {
    Trunk& trunk = trunks_.at(row.prompt);
    Fork fork;
    fork.response =
        ResponseTokens(row.ResponseText(), &trunk, row.segment_tokens, row.n_segment_tokens);
    // Tokens the fork shares with the trunk stay; a moved token boundary is decoded again.
    const size_t keep = CommonPrefix(fork.response, trunk.response);
    fork.seq = pool_->Fork(trunk.seq);
    if (keep < trunk.response.size())
      pool_->Rewind(fork.seq, trunk.n_prefix + static_cast<llama_pos>(keep));
    Job job{fork.seq, trunk.n_prefix + static_cast<llama_pos>(keep), {}, true};
    job.tokens.assign(fork.response.begin() + static_cast<std::ptrdiff_t>(keep),
                      fork.response.end());
    job.tokens.insert(job.tokens.end(), suffix_.begin(), suffix_.end());
    trunk.decoded += static_cast<int64_t>(job.tokens.size());
    trunk.forks.push_back(std::move(fork));
    jobs.push_back(std::move(job));
  }
  *scores = Run(jobs);
}

void JudgeReward::Commit(int32_t prompt, const int32_t* tokens, int32_t n_tokens,
                         std::string_view text) {
  EnsureTrunks({prompt});
  Trunk& trunk = trunks_.at(prompt);
  const std::string new_text = trunk.text + std::string(text);
  std::vector<llama_token> response = ResponseTokens(new_text, &trunk, tokens, n_tokens);
  const llama_pos end = trunk.n_prefix + static_cast<llama_pos>(response.size());
  auto scored = std::find_if(trunk.forks.begin(), trunk.forks.end(),
                             [&](const Fork& fork) { return fork.response == response; });
  if (scored != trunk.forks.end()) {
    // The accepted candidate was scored last round: its fork, less the question, is the trunk.
    pool_->Rewind(scored->seq, end);
    trunk.seq = pool_->Adopt(trunk.seq, scored->seq);
    scored->seq = -1;
  } else {
    const size_t keep = CommonPrefix(response, trunk.response);
    pool_->Rewind(trunk.seq, trunk.n_prefix + static_cast<llama_pos>(keep));
    std::vector<Job> jobs{
        {trunk.seq, trunk.n_prefix + static_cast<llama_pos>(keep),
         std::vector<llama_token>(response.begin() + static_cast<std::ptrdiff_t>(keep),
                                  response.end()),
         false}};
    trunk.decoded += static_cast<int64_t>(jobs[0].tokens.size());
    Run(jobs);
  }
  ReleaseForks(trunk);
  trunk.response = std::move(response);
  trunk.text = new_text;
}

void JudgeReward::Finish(int32_t prompt) {
  Trunk& trunk = trunks_.at(prompt);
  ReleaseForks(trunk);
  if (trunk.seq >= 0) pool_->Release(trunk.seq);
  trunk.seq = -1;
}

std::vector<double> JudgeReward::ScoreTexts(const std::vector<std::string>& prompts,
                                            const std::vector<std::string>& responses) {
  if (prompts.size() != responses.size()) {
    throw ParameterError("prompts and responses differ in length");
  }
  std::vector<std::vector<llama_token>> inputs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<llama_token> tokens = PrefixTokens(prompts[i]);
    const std::vector<llama_token> response = tokenizer_.Tokenize(responses[i], false, false);
    tokens.insert(tokens.end(), response.begin(), response.end());
    inputs.push_back(std::move(tokens));
  }
  return ScoreFromScratch(inputs);
}

std::vector<double> JudgeReward::ScoreFromScratch(std::vector<std::vector<llama_token>>& inputs) {
  std::vector<double> scores;
  for (size_t first = 0; first < inputs.size(); first += kScratchRows) {
    const size_t last = std::min(inputs.size(), first + kScratchRows);
    std::vector<Job> jobs;
    for (size_t i = first; i < last; ++i) {
      inputs[i].insert(inputs[i].end(), suffix_.begin(), suffix_.end());
      jobs.push_back({pool_->Acquire(), 0, std::move(inputs[i]), true});
    }
    std::vector<double> chunk;
    try {
      chunk = Run(jobs);
    } catch (...) {
      for (const Job& job : jobs) pool_->Release(job.seq);
      throw;
    }
    for (const Job& job : jobs) pool_->Release(job.seq);
    scores.insert(scores.end(), chunk.begin(), chunk.end());
  }
  return scores;
}

double JudgeReward::ScorePolicyTokens(const std::string& prompt,
                                      const std::vector<llama_token>& tokens) {
  if (!shared_vocab_) {
    throw ParameterError("policy token ids need a judge with the policy's vocabulary");
  }
  std::vector<std::vector<llama_token>> inputs{PrefixTokens(prompt)};
  inputs[0].insert(inputs[0].end(), tokens.begin(), tokens.end());
  return ScoreFromScratch(inputs).at(0);
}

}  // namespace stars
