#include "reward/kv_cached_reward.h"

#include <algorithm>
#include <mutex>
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

KvCachedRewardImpl::KvCachedRewardImpl(std::shared_ptr<Model> model,
                                       const std::shared_ptr<Model>& policy)
    : model_(std::move(model)), tokenizer_(*model_) {
  shared_vocab_ = policy != nullptr && tokenizer_.SameVocabulary(Tokenizer(*policy));
}

void KvCachedRewardImpl::SetLayout(const std::string& rendered, const std::string& what) {
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

void KvCachedRewardImpl::Open(ContextOptions options) {
  options_ = options;
  isolated_ = options.layout == KvLayout::kIsolated;
  // Sequence ids size llama.cpp's output rows and worst-case graph; with fewer ids than a
  // round's rows, MakeRoom evicts cached forks and the trunks' caches stay.
  if (isolated_) {
    MakeContext(8, std::min(256, options.n_ctx));
  } else {
    MakeContext(std::min(kSequences, MaxSequences()), options.n_ctx);
  }
}

void KvCachedRewardImpl::MakeContext(int32_t seqs, int32_t cells) {
  runner_.reset();
  pool_.reset();
  context_.reset();  // the old one's memory goes back before the new one asks
  for (Trunk& trunk : trunks_) {
    trunk.seq = -1;
    trunk.forks.clear();
  }
  ContextOptions options = options_;
  options.n_seq_max = seqs;
  options.n_ctx = cells;
  context_ = std::make_unique<Context>(model_, options);
  pool_ = std::make_unique<SequencePool>(*context_);
  runner_ = std::make_unique<BatchRunner>(*context_, pool_.get());
}

void KvCachedRewardImpl::Reserve(int32_t seqs, int64_t cells) {
  if (!isolated_) return;
  if (cells > options_.n_ctx) {
    throw ContextLengthError(
        "the reward model's input of " + std::to_string(cells) +
        " tokens is longer than its context (n_ctx=" + std::to_string(options_.n_ctx) + ")");
  }
  seqs = std::min(seqs, MaxSequences());
  int32_t have_seqs = pool_->n_total();
  int64_t have_cells = context_->n_ctx_seq();
  if (seqs <= have_seqs && cells <= have_cells) return;
  // Streams by eights (each costs a whole stream of cells), cells by doubling.
  have_seqs = std::max(have_seqs, (seqs + 7) / 8 * 8);
  while (have_cells < cells) have_cells *= 2;
  MakeContext(std::min(have_seqs, MaxSequences()),
              static_cast<int32_t>(std::min<int64_t>(have_cells, options_.n_ctx)));
}

bool KvCachedRewardImpl::Fits(int64_t cells, int32_t seqs, int32_t free_seqs) const {
  if (seqs > free_seqs) return false;
  return isolated_ || pool_->n_cells_in_use() + cells <= context_->n_ctx();
}

std::string KvCachedRewardImpl::RenderText(const std::string& prompt,
                                           const std::string& response) const {
  return prefix_head_ + prompt + prefix_tail_ + response + suffix_text_;
}

std::vector<llama_token> KvCachedRewardImpl::InputTokens(const std::string& prompt,
                                                         const std::string& response) const {
  std::vector<llama_token> tokens = PrefixTokens(prompt);
  const std::vector<llama_token> body = tokenizer_.Tokenize(response, false, false);
  tokens.insert(tokens.end(), body.begin(), body.end());
  tokens.insert(tokens.end(), suffix_.begin(), suffix_.end());
  return tokens;
}

std::vector<llama_token> KvCachedRewardImpl::PrefixTokens(const std::string& prompt) const {
  std::vector<llama_token> tokens = tokenizer_.TokenizeChat(prefix_head_);
  const std::vector<llama_token> user = tokenizer_.Tokenize(prompt, false, false);
  const std::vector<llama_token> tail = tokenizer_.Tokenize(prefix_tail_, false, true);
  tokens.insert(tokens.end(), user.begin(), user.end());
  tokens.insert(tokens.end(), tail.begin(), tail.end());
  return tokens;
}

std::vector<llama_token> KvCachedRewardImpl::ResponseTokens(std::string_view text,
                                                            const Trunk* trunk,
                                                            const int32_t* policy_tokens,
                                                            int32_t n) const {
  if (shared_vocab_ && trunk != nullptr) {
    std::vector<llama_token> tokens = trunk->response;
    tokens.insert(tokens.end(), policy_tokens, policy_tokens + n);
    return tokens;
  }
  return tokenizer_.Tokenize(std::string(text), false, false);
}

void KvCachedRewardImpl::Begin(int32_t prompt, std::string_view text) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (prompt < 0) throw ParameterError("prompt id must be >= 0, got " + std::to_string(prompt));
  const size_t id = static_cast<size_t>(prompt);
  if (id >= trunks_.size()) {
    trunks_.resize(id + 1);
    prompts_.resize(id + 1);
  }
  Release(prompt);  // an id handed out again starts from nothing
  trunks_[id] = Trunk{};
  prompts_[id] = std::string(text);
}

int64_t KvCachedRewardImpl::TokensDecoded(int32_t prompt) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return trunks_.at(prompt).decoded;
}

void KvCachedRewardImpl::ReleaseForks(Trunk& trunk) {
  for (Fork& fork : trunk.forks) {
    if (fork.seq >= 0) pool_->Release(fork.seq);
  }
  trunk.forks.clear();
}

std::vector<double> KvCachedRewardImpl::Run(std::vector<Job>& jobs) {
  std::vector<DecodeJob> views;
  views.reserve(jobs.size());
  std::vector<size_t> score_index(jobs.size());  // job -> its place among the scored ones
  size_t n_scored = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    if (job.pos + static_cast<int64_t>(job.tokens.size()) > context_->n_ctx_seq()) {
      throw ContextLengthError(
          "the reward model's input of " + std::to_string(job.pos + job.tokens.size()) +
          " tokens is longer than its context (n_ctx=" + std::to_string(context_->n_ctx_seq()) +
          ")");
    }
    views.push_back(
        {job.seq, job.pos, job.tokens.data(), static_cast<int32_t>(job.tokens.size()), job.score});
    if (job.score) score_index[j] = n_scored++;
  }
  std::vector<double> scores(n_scored);
  runner_->Run(views, [&](const DecodedView& view) {
    for (const DecodedOutput& out : view.outputs) {
      scores[score_index[out.job]] = Readout(*context_, out.batch_index);
    }
  });
  return scores;
}

KvCachedRewardImpl::Trunk& KvCachedRewardImpl::PlannedTrunk(int32_t prompt) {
  Trunk& trunk = trunks_.at(prompt);
  if (trunk.prefix.empty()) {
    trunk.prefix = PrefixTokens(prompts_.at(prompt));
    if (trunk.prefix.empty()) {
      throw RewardError("the reward model's input before the response is empty for prompt " +
                        std::to_string(prompt) + ": give its template a head or a BOS token");
    }
  }
  return trunk;
}

void KvCachedRewardImpl::EnsureTrunks(const std::vector<int32_t>& prompts) {
  std::vector<Job> jobs;
  for (int32_t prompt : prompts) {
    Trunk& trunk = PlannedTrunk(prompt);
    if (trunk.seq >= 0) continue;
    trunk.seq = pool_->AcquireLasting();
    Job job{trunk.seq, 0, trunk.prefix, false};
    job.tokens.insert(job.tokens.end(), trunk.response.begin(), trunk.response.end());
    trunk.decoded += static_cast<int64_t>(job.tokens.size());
    jobs.push_back(std::move(job));
  }
  Run(jobs);
}

void KvCachedRewardImpl::MakeRoom(int64_t cells, int32_t seqs, const std::vector<int32_t>& keep) {
  auto fits = [&] { return Fits(cells, seqs, pool_->n_free()); };
  if (fits()) return;
  auto kept = [&](size_t prompt) {
    return std::find(keep.begin(), keep.end(), static_cast<int32_t>(prompt)) != keep.end();
  };
  std::vector<size_t> idle;
  for (size_t i = 0; i < trunks_.size(); ++i) {
    if (!kept(i) && (trunks_[i].seq >= 0 || !trunks_[i].forks.empty())) idle.push_back(i);
  }
  std::sort(idle.begin(), idle.end(),
            [&](size_t a, size_t b) { return trunks_[a].last_used < trunks_[b].last_used; });
  for (size_t i : idle) {
    Trunk& trunk = trunks_[i];
    ReleaseForks(trunk);
    if (trunk.seq >= 0) pool_->Release(trunk.seq);
    trunk.seq = -1;
    if (fits()) return;
  }
  for (int32_t prompt : keep) {
    ReleaseForks(trunks_.at(prompt));
    if (fits()) return;
  }
  throw ContextLengthError(
      "the reward model's context (n_ctx=" + std::to_string(context_->n_ctx()) + ") cannot hold " +
      std::to_string(cells) + " more cells in " + std::to_string(seqs) +
      " sequences beside its current trunks: raise the reward's n_ctx");
}

void KvCachedRewardImpl::Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++clock_;
  // Each row: its tokens, how many it shares with its trunk, and the cells of its own.
  std::vector<std::vector<llama_token>> responses(rows.size());
  std::vector<size_t> keeps(rows.size());
  std::vector<int64_t> row_cells(rows.size());
  for (const RewardRow& row : rows) ReleaseForks(PlannedTrunk(row.prompt));
  for (size_t r = 0; r < rows.size(); ++r) {
    const RewardRow& row = rows[r];
    Trunk& trunk = trunks_.at(row.prompt);
    trunk.last_used = clock_;
    responses[r] =
        ResponseTokens(row.ResponseText(), &trunk, row.segment_tokens, row.n_segment_tokens);
    keeps[r] = CommonPrefix(responses[r], trunk.response);
    row_cells[r] =
        std::max<int64_t>(1, static_cast<int64_t>(responses[r].size() - keeps[r] + suffix_.size()));
  }
  // Isolated: streams for every row and its trunk at once, each as long as the longest of them.
  if (isolated_) {
    int64_t longest = 0;
    std::vector<int32_t> prompts;
    for (size_t r = 0; r < rows.size(); ++r) {
      const Trunk& trunk = trunks_.at(rows[r].prompt);
      longest = std::max(longest, trunk.n_prefix() + static_cast<int64_t>(keeps[r]) + row_cells[r]);
      longest = std::max(longest, trunk.cells());
      prompts.push_back(rows[r].prompt);
    }
    std::sort(prompts.begin(), prompts.end());
    const auto distinct = std::unique(prompts.begin(), prompts.end()) - prompts.begin();
    Reserve(static_cast<int32_t>(rows.size() + distinct), longest);
  }
  // Rows of one prompt side by side, so that a group of rows needs few trunks.
  std::vector<size_t> order(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) order[r] = r;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return rows[a].prompt < rows[b].prompt; });

  scores->assign(rows.size(), 0.0);
  size_t begin = 0;
  while (begin < order.size()) {
    // As many rows as the whole context holds with their trunks; usually all of them.
    std::vector<int32_t> group;
    int64_t cells = 0;
    int32_t seqs = 0;
    size_t end = begin;
    for (; end < order.size(); ++end) {
      const int32_t prompt = rows[order[end]].prompt;
      const bool new_trunk = group.empty() || group.back() != prompt;
      const int64_t more = row_cells[order[end]] + (new_trunk ? trunks_[prompt].cells() : 0);
      const int32_t more_seqs = new_trunk ? 2 : 1;
      if (end > begin && !Fits(cells + more, seqs + more_seqs, pool_->n_total())) break;
      if (new_trunk) group.push_back(prompt);
      cells += more;
      seqs += more_seqs;
    }
    for (int32_t prompt : group) {
      if (trunks_[prompt].seq >= 0) {
        cells -= trunks_[prompt].cells();
        seqs -= 1;
      }
    }
    MakeRoom(cells, seqs, group);
    EnsureTrunks(group);

    std::vector<Job> jobs;
    for (size_t i = begin; i < end; ++i) {
      const size_t r = order[i];
      Trunk& trunk = trunks_[rows[r].prompt];
      const size_t keep = keeps[r];
      Fork fork;
      fork.response = std::move(responses[r]);
      // Tokens the fork shares with the trunk stay; a moved token boundary is decoded again.
      fork.seq = pool_->Fork(trunk.seq);
      if (keep < trunk.response.size())
        pool_->Rewind(fork.seq, trunk.n_prefix() + static_cast<llama_pos>(keep));
      Job job{fork.seq, trunk.n_prefix() + static_cast<llama_pos>(keep), {}, true};
      job.tokens.assign(fork.response.begin() + static_cast<std::ptrdiff_t>(keep),
                        fork.response.end());
      job.tokens.insert(job.tokens.end(), suffix_.begin(), suffix_.end());
      if (job.tokens.empty()) {
        // No suffix and nothing new (r(x, empty) on an empty trunk, say): the reward is read at
        // the trunk's last token, so decode that one again in the fork.
        job.pos -= 1;
        job.tokens = {keep > 0 ? fork.response[keep - 1] : trunk.prefix.back()};
        pool_->Rewind(fork.seq, job.pos);
      }
      trunk.decoded += static_cast<int64_t>(job.tokens.size());
      trunk.forks.push_back(std::move(fork));
      jobs.push_back(std::move(job));
    }
    const std::vector<double> group_scores = Run(jobs);
    for (size_t i = begin; i < end; ++i) (*scores)[order[i]] = group_scores[i - begin];
    begin = end;
  }
}

void KvCachedRewardImpl::Commit(int32_t prompt, const int32_t* tokens, int32_t n_tokens,
                                std::string_view text) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++clock_;
  Trunk& trunk = PlannedTrunk(prompt);
  trunk.last_used = clock_;
  const std::string new_text = trunk.text + std::string(text);
  std::vector<llama_token> response = ResponseTokens(new_text, &trunk, tokens, n_tokens);
  const llama_pos end = trunk.n_prefix() + static_cast<llama_pos>(response.size());
  Reserve(1, end);
  auto scored = std::find_if(trunk.forks.begin(), trunk.forks.end(),
                             [&](const Fork& fork) { return fork.response == response; });
  if (trunk.seq >= 0 && scored != trunk.forks.end()) {
    // The accepted candidate was scored last round: its fork, less the suffix, is the trunk.
    pool_->Rewind(scored->seq, end);
    trunk.seq = pool_->Adopt(trunk.seq, scored->seq);
    scored->seq = -1;
  } else {
    // Not scored, or evicted since: extend the trunk (rebuilt first if it was evicted).
    ReleaseForks(trunk);
    const size_t keep = CommonPrefix(response, trunk.response);
    MakeRoom((trunk.seq >= 0 ? 0 : trunk.cells()) + static_cast<int64_t>(response.size() - keep),
             trunk.seq >= 0 ? 0 : 1, {prompt});
    EnsureTrunks({prompt});
    pool_->Rewind(trunk.seq, trunk.n_prefix() + static_cast<llama_pos>(keep));
    std::vector<Job> jobs{
        {trunk.seq, trunk.n_prefix() + static_cast<llama_pos>(keep),
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

void KvCachedRewardImpl::Finish(int32_t prompt) {
  std::lock_guard<std::mutex> lock(mutex_);
  Release(prompt);
}

void KvCachedRewardImpl::Release(int32_t prompt) {
  if (prompt < 0 || static_cast<size_t>(prompt) >= trunks_.size()) return;
  Trunk& trunk = trunks_[static_cast<size_t>(prompt)];
  ReleaseForks(trunk);
  if (trunk.seq >= 0) pool_->Release(trunk.seq);
  trunk.seq = -1;
}

std::vector<double> KvCachedRewardImpl::ScoreTexts(const std::vector<std::string>& prompts,
                                                   const std::vector<std::string>& responses) {
  std::lock_guard<std::mutex> lock(mutex_);
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

std::vector<double> KvCachedRewardImpl::ScoreFromScratch(
    std::vector<std::vector<llama_token>>& inputs) {
  std::vector<double> scores;
  if (isolated_) {
    int64_t longest = 0;
    for (const auto& input : inputs) {
      longest = std::max(longest, static_cast<int64_t>(input.size() + suffix_.size()));
    }
    Reserve(static_cast<int32_t>(std::min(inputs.size(), kScratchRows)), longest);
  }
  size_t first = 0;
  while (first < inputs.size()) {
    // Rows decoded together, each in its own sequence, as many as the context's cells hold.
    size_t last = first;
    int64_t cells = 0;
    for (; last < inputs.size() && last - first < kScratchRows; ++last) {
      const int64_t n = static_cast<int64_t>(inputs[last].size() + suffix_.size());
      if (last > first &&
          !Fits(cells + n, static_cast<int32_t>(last - first + 1), pool_->n_total())) {
        break;
      }
      cells += n;
    }
    MakeRoom(cells, static_cast<int32_t>(last - first), {});
    std::vector<Job> jobs;
    for (size_t i = first; i < last; ++i) {
      inputs[i].insert(inputs[i].end(), suffix_.begin(), suffix_.end());
      jobs.push_back({pool_->Acquire(), 0, std::move(inputs[i]), true});
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

double KvCachedRewardImpl::ScorePolicyTokens(const std::string& prompt,
                                             const std::vector<llama_token>& tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!shared_vocab_) {
    throw ParameterError("policy token ids need a reward model with the policy's vocabulary");
  }
  std::vector<std::vector<llama_token>> inputs{PrefixTokens(prompt)};
  inputs[0].insert(inputs[0].end(), tokens.begin(), tokens.end());
  return ScoreFromScratch(inputs).at(0);
}

}  // namespace stars
