#include "reward/classifier_reward.h"

#include <algorithm>
#include <string>

#include "stars/errors.h"

namespace stars {
namespace {

constexpr int32_t kRowsPerBatch = 64;

std::vector<llama_token> Concat(std::initializer_list<const std::vector<llama_token>*> parts) {
  std::vector<llama_token> out;
  for (const auto* part : parts) out.insert(out.end(), part->begin(), part->end());
  return out;
}

void ReplaceAll(std::string* text, const std::string& from, const std::string& to) {
  for (size_t at = text->find(from); at != std::string::npos;
       at = text->find(from, at + to.size())) {
    text->replace(at, from.size(), to);
  }
}

}  // namespace

ClassifierRewardImpl::ClassifierRewardImpl(std::shared_ptr<Model> model,
                                           const ClassifierOptions& options)
    : model_(std::move(model)), tokenizer_(*model_), labels_(options.labels) {
  ResolveThreads(options.n_threads);
  const int32_t n_out = model_->n_cls_out();
  if (labels_.empty() || labels_.size() > 2) {
    throw ParameterError("label must be one output or a (pos, neg) pair");
  }
  for (int32_t label : labels_) {
    if (label < 0 || label >= n_out) {
      throw ParameterError("label " + std::to_string(label) + " is out of range: '" +
                           model_->description() + "' has " + std::to_string(n_out) +
                           " classifier output(s)");
    }
  }
  row_limit_ =
      options.n_ctx > 0 ? std::min(options.n_ctx, model_->n_ctx_train()) : model_->n_ctx_train();
  // Room for several rows per decode; an encoder needs the whole batch in one ubatch.
  const int32_t n_ctx = row_limit_ * 4;
  ContextOptions context_options;
  context_options.n_ctx = n_ctx;
  context_options.n_batch = n_ctx;
  context_options.n_ubatch = n_ctx;
  rows_per_batch_ = options.kv_layout == KvLayout::kIsolated ? 1 : kRowsPerBatch;
  context_options.n_seq_max = rows_per_batch_;
  context_options.n_threads = options.n_threads;
  context_options.embeddings = true;
  context_options.pooling = LLAMA_POOLING_TYPE_UNSPECIFIED;  // the model's own
  context_ = std::make_unique<Context>(model_, context_options);
  if (context_->pooling() != LLAMA_POOLING_TYPE_RANK || n_out < 1) {
    throw RewardError("'" + model_->description() +
                      "' has no classification head: its pooling type is not RANK, so it is not "
                      "a sequence classifier or reranker GGUF");
  }
  runner_ = std::make_unique<BatchRunner>(*context_, nullptr, true);
  const bool has_rerank_template = model_->ChatTemplate("rerank") != nullptr;
  pair_ = options.pair >= 0 ? options.pair == 1 : (has_rerank_template || n_out == 1);
}

void ClassifierRewardImpl::Begin(int32_t prompt, std::string_view text) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (prompt < 0) throw ParameterError("prompt id must be >= 0, got " + std::to_string(prompt));
  const size_t id = static_cast<size_t>(prompt);
  if (id >= prompts_.size()) {
    prompts_.resize(id + 1);
    tokens_decoded_.resize(id + 1);
    rows_truncated_.resize(id + 1);
  }
  prompts_[id] = std::string(text);
  tokens_decoded_[id] = 0;
  rows_truncated_[id] = 0;
}

int64_t ClassifierRewardImpl::TokensDecoded(int32_t prompt) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return tokens_decoded_.at(prompt);
}

int64_t ClassifierRewardImpl::RowsTruncated(int32_t prompt) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return rows_truncated_.at(prompt);
}

std::vector<llama_token> ClassifierRewardImpl::BuildInput(const std::string& prompt,
                                                          const std::string& response,
                                                          bool* truncated) const {
  *truncated = false;
  if (!pair_) {
    std::vector<llama_token> tokens = tokenizer_.Tokenize(response, true, false);
    if (static_cast<int32_t>(tokens.size()) <= row_limit_) return tokens;
    // Keep the response's end between the special tokens the tokenizer put around it.
    *truncated = true;
    const std::vector<llama_token> body = tokenizer_.Tokenize(response, false, false);
    const size_t lead = tokenizer_.adds_bos() && tokens.front() == tokenizer_.bos() ? 1 : 0;
    const size_t trail = tokens.size() - body.size() - lead;
    const size_t keep = static_cast<size_t>(row_limit_) - lead - trail;
    std::vector<llama_token> out(tokens.begin(),
                                 tokens.begin() + static_cast<std::ptrdiff_t>(lead));
    out.insert(out.end(), body.end() - static_cast<std::ptrdiff_t>(keep), body.end());
    out.insert(out.end(), tokens.end() - static_cast<std::ptrdiff_t>(trail), tokens.end());
    return out;
  }
  // A reranker: llama.cpp's own layout (tools/server format_prompt_rerank).
  if (const char* tmpl = model_->ChatTemplate("rerank")) {
    std::string text = tmpl;
    ReplaceAll(&text, "{query}", prompt);
    ReplaceAll(&text, "{document}", response);
    std::vector<llama_token> tokens = tokenizer_.Tokenize(text, false, true);
    if (static_cast<int32_t>(tokens.size()) > row_limit_) {
      *truncated = true;
      tokens.resize(static_cast<size_t>(row_limit_));
    }
    return tokens;
  }
  std::vector<llama_token> query = tokenizer_.Tokenize(prompt, false, false);
  std::vector<llama_token> doc = tokenizer_.Tokenize(response, false, false);
  const llama_token eos =
      tokenizer_.eos() != LLAMA_TOKEN_NULL ? tokenizer_.eos() : tokenizer_.sep();
  std::vector<llama_token> head, middle, tail;
  if (tokenizer_.adds_bos()) head.push_back(tokenizer_.bos());
  if (tokenizer_.adds_eos()) middle.push_back(eos);
  if (tokenizer_.adds_sep()) middle.push_back(tokenizer_.sep());
  if (tokenizer_.adds_eos()) tail.push_back(eos);
  const size_t specials = head.size() + middle.size() + tail.size();
  const size_t budget = static_cast<size_t>(row_limit_) > specials ? row_limit_ - specials : 0;
  if (query.size() + doc.size() > budget) {
    *truncated = true;
    // Keep the prompt's start and the response's end, each at least half when both are long.
    const size_t doc_keep =
        std::min(doc.size(), std::max(budget / 2, budget - std::min(query.size(), budget)));
    const size_t query_keep = std::min(query.size(), budget - doc_keep);
    query.resize(query_keep);
    doc.erase(doc.begin(), doc.end() - static_cast<std::ptrdiff_t>(doc_keep));
  }
  return Concat({&head, &query, &middle, &doc, &tail});
}

std::vector<double> ClassifierRewardImpl::ScoreInputs(
    const std::vector<std::vector<llama_token>>& inputs) {
  std::vector<double> scores(inputs.size());
  size_t next = 0;
  while (next < inputs.size()) {
    // Rows that fit one batch, each in its own sequence (pooled outputs need whole rows).
    std::vector<DecodeJob> jobs;
    int32_t n_tokens = 0;
    const size_t first = next;
    while (next < inputs.size() && static_cast<int32_t>(jobs.size()) < rows_per_batch_ &&
           (jobs.empty() ||
            n_tokens + static_cast<int32_t>(inputs[next].size()) <= runner_->n_batch())) {
      const auto& tokens = inputs[next];
      jobs.push_back({static_cast<llama_seq_id>(next - first), 0, tokens.data(),
                      static_cast<int32_t>(tokens.size()), true});
      n_tokens += static_cast<int32_t>(tokens.size());
      ++next;
    }
    runner_->Run(jobs, [&](const DecodedView& view) {
      for (const DecodedOutput& out : view.outputs) {
        const float* row = context_->SequenceEmbeddings(jobs[out.job].seq);
        scores[first + out.job] =
            labels_.size() == 1 ? row[labels_[0]] : row[labels_[0]] - row[labels_[1]];
      }
    });
    // A causal reranker keeps KV cells; rows never share them.
    context_->ClearMemory();
  }
  return scores;
}

void ClassifierRewardImpl::Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::vector<llama_token>> inputs;
  inputs.reserve(rows.size());
  for (const RewardRow& row : rows) {
    bool truncated = false;
    inputs.push_back(BuildInput(prompts_.at(row.prompt), row.ResponseText(), &truncated));
    tokens_decoded_.at(row.prompt) += static_cast<int64_t>(inputs.back().size());
    rows_truncated_.at(row.prompt) += truncated ? 1 : 0;
  }
  *scores = ScoreInputs(inputs);
}

std::vector<llama_token> ClassifierRewardImpl::InputTokens(const std::string& prompt,
                                                           const std::string& response) const {
  bool truncated = false;
  return BuildInput(prompt, response, &truncated);
}

std::vector<double> ClassifierRewardImpl::ScoreTexts(const std::vector<std::string>& prompts,
                                                     const std::vector<std::string>& responses) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (prompts.size() != responses.size()) {
    throw ParameterError("prompts and responses differ in length");
  }
  std::vector<std::vector<llama_token>> inputs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    bool truncated = false;
    inputs.push_back(BuildInput(prompts[i], responses[i], &truncated));
  }
  return ScoreInputs(inputs);
}

}  // namespace stars
