#include "reward/kv_cached_reward.h"

#include <algorithm>
#include <string>

#include "stars/errors.h"

namespace stars {
namespace {

// From-scratch rows decoded together (each in its own sequence).
constexpr size_t kScratchRows = 32;

size_t CommonPrefix(const std::vector<llama_token>& a, const std::vector<llama_token>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

KvCachedReward::KvCachedReward(std::shared_ptr<Model> model, const std::shared_ptr<Model>& policy)
    : model_(std::move(model)), tokenizer_(*model_) {
  shared_vocab_ = policy != nullptr && tokenizer_.SameVocabulary(Tokenizer(*policy));
}

void KvCachedReward::SetLayout(const std::string& rendered, const std::string& what) {
  const size_t at_prompt = rendered.find(kPromptMark);
  const size_t at_response = rendered.find(kResponseMark);
  if (at_prompt == std::string::npos || at_response == std::string::npos ||
      at_response < at_prompt) {
    throw ChatTemplateError(what + " altered its input: cannot place the prompt and the response");
  }
  prefix_head_ = rendered.substr(0, at_prompt);
  const size_t after_prompt = at_prompt + std::string(kPromptMark).size();
  prefix_tail_ = rendered.substr(after_prompt, at_response - after_prompt);
  suffix_text_ = rendered.substr(at_response + std::string(kResponseMark).size());
  suffix_ = tokenizer_.Tokenize(suffix_text_, false, true);
}

void KvCachedReward::Open(ContextOptions options) {
  options.n_seq_max = static_cast<int32_t>(llama_max_parallel_sequences());
  context_ = std::make_unique<Context>(model_, options);
  pool_ = std::make_unique<SequencePool>(*context_);
  batch_ = std::make_unique<Batch>(context_->n_batch());
}

std::string KvCachedReward::RenderText(const std::string& prompt,
                                       const std::string& response) const {
  return prefix_head_ + prompt + prefix_tail_ + response + suffix_text_;
}

std::vector<llama_token> KvCachedReward::InputTokens(const std::string& prompt,
                                                     const std::string& response) const {
  std::vector<llama_token> tokens = PrefixTokens(prompt);
  const std::vector<llama_token> body = tokenizer_.Tokenize(response, false, false);
  tokens.insert(tokens.end(), body.begin(), body.end());
  tokens.insert(tokens.end(), suffix_.begin(), suffix_.end());
  return tokens;
}

std::vector<llama_token> KvCachedReward::PrefixTokens(const std::string& prompt) const {
  std::vector<llama_token> tokens = tokenizer_.TokenizeChat(prefix_head_);
  const std::vector<llama_token> user = tokenizer_.Tokenize(prompt, false, false);
  const std::vector<llama_token> tail = tokenizer_.Tokenize(prefix_tail_, false, true);
  tokens.insert(tokens.end(), user.begin(), user.end());
  tokens.insert(tokens.end(), tail.begin(), tail.end());
  return tokens;
}

std::vector<llama_token> KvCachedReward::ResponseTokens(std::string_view text, const Trunk* trunk,
                                                        const int32_t* policy_tokens,
                                                        int32_t n) const {
  if (shared_vocab_ && trunk != nullptr) {
    std::vector<llama_token> tokens = trunk->response;
    tokens.insert(tokens.end(), policy_tokens, policy_tokens + n);
    return tokens;
  }
  return tokenizer_.Tokenize(std::string(text), false, false);
}

void KvCachedReward::Begin(const std::vector<std::string>& prompts) {
  pool_->Clear();
  prompts_ = prompts;
  trunks_.assign(prompts.size(), Trunk{});
}

int64_t KvCachedReward::TokensDecoded(int32_t prompt) const { return trunks_.at(prompt).decoded; }

void KvCachedReward::ReleaseForks(Trunk& trunk) {
  for (Fork& fork : trunk.forks) {
    if (fork.seq >= 0) pool_->Release(fork.seq);
  }
  trunk.forks.clear();
}

std::vector<double> KvCachedReward::Run(std::vector<Job>& jobs) {
  std::vector<double> scores;
  std::vector<int32_t> outputs;  // batch index of each scored job of the current batch
  auto flush = [&] {
    if (batch_->empty()) return;
    context_->Decode(*batch_);
    for (int32_t index : outputs) scores.push_back(Readout(*context_, index));
    outputs.clear();
    batch_->Clear();
  };
  batch_->Clear();
  for (Job& job : jobs) {
    if (job.pos + static_cast<int64_t>(job.tokens.size()) > context_->n_ctx()) {
      throw ContextLengthError(
          "the reward model's input of " + std::to_string(job.pos + job.tokens.size()) +
          " tokens is longer than its context (n_ctx=" + std::to_string(context_->n_ctx()) + ")");
    }
    const int32_t last = static_cast<int32_t>(job.tokens.size()) - 1;
    for (int32_t i = 0; i <= last; ++i) {
      if (batch_->size() == batch_->capacity()) flush();  // a long job goes on in the next batch
      const int32_t index =
          batch_->Add(job.tokens[i], job.pos + i, job.seq, job.score && i == last);
      if (index >= 0) outputs.push_back(index);
    }
  }
  flush();
  return scores;
}

void KvCachedReward::EnsureTrunks(const std::vector<int32_t>& prompts) {
  std::vector<Job> jobs;
  for (int32_t prompt : prompts) {
    Trunk& trunk = trunks_.at(prompt);
    if (trunk.seq >= 0) continue;
    trunk.seq = pool_->Acquire();
    std::vector<llama_token> prefix = PrefixTokens(prompts_.at(prompt));
    if (prefix.empty()) {
      throw RewardError("the reward model's input before the response is empty for prompt " +
                        std::to_string(prompt) + ": give its template a head or a BOS token");
    }
    trunk.n_prefix = static_cast<int32_t>(prefix.size());
    trunk.last_prefix_token = prefix.back();
    trunk.decoded += trunk.n_prefix;
    jobs.push_back({trunk.seq, 0, std::move(prefix), false});
  }
  Run(jobs);
}

void KvCachedReward::Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) {
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
    if (job.tokens.empty()) {
      // No suffix and nothing new (r(x, empty) on an empty trunk, say): the reward is read at
      // the trunk's last token, so decode that one again in the fork.
      job.pos -= 1;
      job.tokens = {keep > 0 ? fork.response[keep - 1] : trunk.last_prefix_token};
      pool_->Rewind(fork.seq, job.pos);
    }
    trunk.decoded += static_cast<int64_t>(job.tokens.size());
    trunk.forks.push_back(std::move(fork));
    jobs.push_back(std::move(job));
  }
  *scores = Run(jobs);
}

void KvCachedReward::Commit(int32_t prompt, const int32_t* tokens, int32_t n_tokens,
                            std::string_view text) {
  EnsureTrunks({prompt});
  Trunk& trunk = trunks_.at(prompt);
  const std::string new_text = trunk.text + std::string(text);
  std::vector<llama_token> response = ResponseTokens(new_text, &trunk, tokens, n_tokens);
  const llama_pos end = trunk.n_prefix + static_cast<llama_pos>(response.size());
  auto scored = std::find_if(trunk.forks.begin(), trunk.forks.end(),
                             [&](const Fork& fork) { return fork.response == response; });
  if (scored != trunk.forks.end()) {
    // The accepted candidate was scored last round: its fork, less the suffix, is the trunk.
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

void KvCachedReward::Finish(int32_t prompt) {
  Trunk& trunk = trunks_.at(prompt);
  ReleaseForks(trunk);
  if (trunk.seq >= 0) pool_->Release(trunk.seq);
  trunk.seq = -1;
}

std::vector<double> KvCachedReward::ScoreTexts(const std::vector<std::string>& prompts,
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

std::vector<double> KvCachedReward::ScoreFromScratch(
    std::vector<std::vector<llama_token>>& inputs) {
  std::vector<double> scores;
  size_t first = 0;
  while (first < inputs.size()) {
    // Rows decoded together, each in its own sequence, as many as the context's cells hold.
    std::vector<Job> jobs;
    int64_t cells = 0;
    for (size_t i = first; i < inputs.size() && jobs.size() < kScratchRows; ++i) {
      const int64_t n = static_cast<int64_t>(inputs[i].size() + suffix_.size());
      if (!jobs.empty() && cells + n > context_->n_ctx()) break;
      inputs[i].insert(inputs[i].end(), suffix_.begin(), suffix_.end());
      jobs.push_back({pool_->Acquire(), 0, std::move(inputs[i]), true});
      cells += n;
    }
    first += jobs.size();
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

double KvCachedReward::ScorePolicyTokens(const std::string& prompt,
                                         const std::vector<llama_token>& tokens) {
  if (!shared_vocab_) {
    throw ParameterError("policy token ids need a reward model with the policy's vocabulary");
  }
  std::vector<std::vector<llama_token>> inputs{PrefixTokens(prompt)};
  inputs[0].insert(inputs[0].end(), tokens.begin(), tokens.end());
  return ScoreFromScratch(inputs).at(0);
}

}  // namespace stars
