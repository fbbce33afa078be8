#include "engine/engine_loop.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "algorithm/admission.h"
#include "algorithm/attempt_key.h"
#include "algorithm/response_text.h"
#include "engine/sampling_pool.h"
#include "llama/sampler.h"
#include "stars/errors.h"
#include "stars/runtime.h"

namespace stars {
namespace {

// The alternatives a sampling job computes: -1 when the request asked for no logprobs.
int32_t LogprobsWanted(const GenerationParams& params) {
  return params.logprobs ? params.top_logprobs : -1;
}

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

RewardRow MakeRow(const PromptRun& run, const Candidate* candidate) {
  RewardRow row;
  row.prompt = run.slot;
  row.trunk_text = run.response_text;
  row.trunk_tokens = run.response_tokens.data();
  row.n_trunk_tokens = run.response_length();
  if (candidate != nullptr) {
    row.segment_text = candidate->text;
    row.segment_tokens = candidate->tokens.data();
    row.n_segment_tokens = static_cast<int32_t>(candidate->tokens.size());
  }
  return row;
}

bool Live(const PromptRun* run) { return !run->finished; }

}  // namespace

EngineLoop::EngineLoop(std::shared_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer,
                       std::shared_ptr<Reward> reward, const EngineOptions& options)
    : model_(std::move(model)),
      tokenizer_holder_(std::move(tokenizer)),
      tokenizer_(*tokenizer_holder_),
      reward_holder_(std::move(reward)),
      reward_(reward_holder_.get()),
      options_(options),
      backend_(options.sampling == Sampling::kBackend ||
               (options.sampling == Sampling::kAuto && model_->offloaded())),
      costs_(options.kv_layout == KvLayout::kIsolated) {}

EngineLoop::~EngineLoop() { Close(); }

// ---------------------------------------------------------------------------------------------
// Requests in and out (any thread).

std::vector<RequestId> EngineLoop::Submit(std::vector<std::unique_ptr<PromptRun>> runs,
                                          bool bounded) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) throw EngineClosedError("the engine is closed");
  if (bounded && options_.max_queue > 0 &&
      queue_.size() + runs.size() > static_cast<size_t>(options_.max_queue)) {
    throw QueueFullError("the queue is full (max_queue=" + std::to_string(options_.max_queue) +
                         " requests wait already): try again later");
  }
  std::vector<RequestId> ids;
  for (std::unique_ptr<PromptRun>& run : runs) {
    run->id = next_id_++;
    ids.push_back(run->id);
    live_.insert(run->id);
    queue_.push_back(std::move(run));
  }
  metrics_.requests_submitted += static_cast<int64_t>(runs.size());
  if (!thread_.joinable()) {
    // One thread for the engine's life, started by its first request.
    thread_ = std::thread([this] {
      Main();
      bool abandoned = false;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        abandoned = abandoned_;
      }
      if (abandoned) delete this;  // nobody else holds it (Abandon)
    });
    thread_id_ = thread_.get_id();
  }
  wake_.notify_one();
  return ids;
}

bool EngineLoop::Cancel(RequestId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (live_.count(id) == 0) return false;
  cancels_.insert(id);
  wake_.notify_one();
  return true;
}

void EngineLoop::Close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_) return;
    closing_ = closed_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
  // A thread started later may get the joined thread's id: OnLoopThread must not match it.
  thread_id_ = std::thread::id();
}

namespace {

// The threads of abandoned loops, joined by JoinAbandonedEngines. Never destroyed: a process
// that exits without joining them must not terminate on a joinable std::thread.
std::mutex abandoned_mutex;
std::vector<std::thread>* abandoned_threads = new std::vector<std::thread>();

}  // namespace

void EngineLoop::Abandon(std::unique_ptr<EngineLoop> loop) {
  std::lock_guard<std::mutex> lock(loop->mutex_);
  loop->closing_ = loop->closed_ = true;
  if (loop->thread_.joinable()) {
    loop->abandoned_ = true;
    {
      std::lock_guard<std::mutex> threads_lock(abandoned_mutex);
      abandoned_threads->push_back(std::move(loop->thread_));
    }
    loop->wake_.notify_one();
    loop.release();  // the loop thread deletes it when Main returns
  }
}

void JoinAbandonedEngines() {
  for (;;) {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(abandoned_mutex);
      threads.swap(*abandoned_threads);
    }
    if (threads.empty()) return;
    for (std::thread& thread : threads) {
      if (thread.get_id() == std::this_thread::get_id()) {
        thread.detach();  // an engine abandoned on this very thread ends on its own
      } else {
        thread.join();
      }
    }
  }
}

EngineMetrics EngineLoop::Metrics() const {
  std::lock_guard<std::mutex> lock(mutex_);
  EngineMetrics metrics = metrics_;
  metrics.requests_queued = static_cast<int64_t>(queue_.size());
  return metrics;
}

// ---------------------------------------------------------------------------------------------
// The loop (its own thread).

void EngineLoop::Main() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        return closing_ || !queue_.empty() || !active_.empty() || !cancels_.empty();
      });
      if (closing_) break;
    }
    try {
      ApplyCancels();
      Admit();
      if (!active_.empty()) Round();
    } catch (...) {
      // A fault of the engine itself: the requests it was running fail with it (all that wait
      // too when the context cannot be created); the loop goes on.
      FailAll(std::current_exception(), context_ == nullptr);
    }
    Retire();
  }
  FailAll(std::make_exception_ptr(EngineClosedError("the engine was closed")), true);
  Retire();
}

void EngineLoop::FailAll(std::exception_ptr error, bool queued_too) {
  for (auto& run : active_) {
    if (Live(run.get())) Fail(*run, error);
  }
  if (!queued_too) return;
  std::deque<std::unique_ptr<PromptRun>> queued;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queued.swap(queue_);
  }
  for (auto& run : queued) {
    run->finished = true;
    run->error = error;
    active_.push_back(std::move(run));
  }
}

void EngineLoop::ApplyCancels() {
  std::unordered_set<RequestId> cancels;
  std::vector<std::unique_ptr<PromptRun>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cancels_.empty()) return;
    cancels.swap(cancels_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (cancels.count((*it)->id) != 0) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& run : dropped) {
    run->cancelled = true;
    run->finished = true;
    run->result.finish_reason = FinishReason::kCancelled;
    active_.push_back(std::move(run));  // Retire hands it out
  }
  for (auto& run : active_) {
    if (Live(run.get()) && cancels.count(run->id) != 0) {
      run->cancelled = true;
      ReleaseSequences(*run);
      Finish(*run, FinishReason::kCancelled);
    }
  }
}

void EngineLoop::Admit() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty()) return;
  }
  // Sequence ids are not free: llama.cpp sizes its output rows and its worst-case graph by
  // them (256 ids hold ~100 MB for a 49k vocabulary). The context takes what the waiting
  // requests need, and is made again, larger, when nothing runs and the queue needs more.
  int32_t wanted = 0;
  if (!context_ || active_.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& run : queue_) wanted += run->reserved_seqs;
  }
  const bool isolated = options_.kv_layout == KvLayout::kIsolated;
  ContextDemand demand;
  demand.wanted_seqs = wanted;
  if (isolated) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& run : queue_) {
      demand.longest_cells = std::max(demand.longest_cells, run->reserved_cells);
    }
  }
  demand.have = context_ ? ContextSize{pool_->n_total(), context_->n_ctx_seq()} : ContextSize{};
  demand.n_seq_max = options_.n_seq_max;
  demand.n_ctx = options_.n_ctx;
  demand.layout = options_.kv_layout;
  demand.max_sequences = MaxSequences();
  const ContextSize size = SizeContext(demand);
  const int32_t n_seq = size.n_seq, n_cells = size.n_cells;
  const bool grow =
      context_ && (n_seq > demand.have.n_seq || (isolated && n_cells > context_->n_ctx_seq()));
  // Made again only when that is larger: a queue beyond 256 ids waits, it does not remake.
  if (!context_ || (active_.empty() && grow)) {
    runner_.reset();
    pool_.reset();
    context_.reset();  // the old one's memory goes back before the new one asks
    ContextOptions options;
    options.n_ctx = n_cells;
    options.n_seq_max = n_seq;
    options.layout = options_.kv_layout;
    options.n_threads = options_.n_threads;
    options.kv_type = options_.kv_type;
    context_ = std::make_unique<Context>(model_, options);
    pool_ = std::make_unique<SequencePool>(*context_);
    runner_ = std::make_unique<BatchRunner>(*context_, pool_.get());
    // Kept when the context is made again: its threads are started once.
    if (!sampling_) sampling_ = std::make_unique<SamplingPool>(context_->n_threads());
    ++metrics_.contexts_created;
    std::lock_guard<std::mutex> lock(mutex_);
    metrics_.cells_total = context_->n_ctx();
  }
  AdmitQueued(false);
}

std::vector<PromptRun*> EngineLoop::AdmitQueued(bool plain_only) {
  std::vector<std::unique_ptr<PromptRun>> admitted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!queue_.empty()) {
      const PromptRun& run = *queue_.front();
      if (plain_only && !run.policy->OneChain()) break;
      // Reserve a request's peak needs up front, so a round never runs out of ids or cells.
      const bool cells_fit = pool_->isolated()
                                 ? run.reserved_cells <= context_->n_ctx_seq()
                                 : cells_reserved_ + run.reserved_cells <= context_->n_ctx();
      if (seqs_reserved_ + run.reserved_seqs > pool_->n_total() || !cells_fit) break;
      seqs_reserved_ += run.reserved_seqs;
      cells_reserved_ += run.reserved_cells;
      admitted.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  std::vector<PromptRun*> started;
  for (auto& owned : admitted) {
    started.push_back(owned.get());
    active_.push_back(std::move(owned));
    Start(*started.back());
  }
  return started;
}

void EngineLoop::Start(PromptRun& run) {
  run.admitted = Clock::now();
  if (free_slots_.empty()) free_slots_.push_back(next_slot_++);
  run.slot = free_slots_.back();
  free_slots_.pop_back();
  run.trunk = pool_->AcquireLasting();
  run.pending = run.prompt_tokens;
  run.result.stats.prompt_tokens = static_cast<int64_t>(run.prompt_tokens.size());
  if (run.policy->OneChain()) {
    run.plain_sampler.emplace(run.params.sampling, AttemptKey(*run.params.seed, run.key, 0, 0),
                              tokenizer_.n_vocab());
  }
  if (backend_ && run.params.logprobs) {
    run.result.stats.sampling_fallback =
        "logprobs needs each token's logits, which backend sampling leaves on the device";
  } else if (backend_) {
    const Sampler probe(run.params.sampling, 0, tokenizer_.n_vocab());
    run.backend = probe.backend_capable();
    if (!run.backend) {
      run.result.stats.sampling_fallback =
          "a sampler of this request's chain (typical_p, repeat_penalty) has no backend "
          "implementation in llama.cpp";
    } else if (run.policy->OneChain()) {
      // The trunk draws each round's first token in the graph, with the response's one chain.
      run.backend = pool_->AttachSampler(run.trunk, &*run.plain_sampler);
      if (run.backend) {
        run.plain_sampler.reset();
      } else {
        run.result.stats.sampling_fallback = "llama.cpp would not take the sampler chain";
      }
    }
  }
  if (reward_ != nullptr) {
    try {
      reward_->Begin(run.slot, run.reward_text);
      run.reward_begun = true;
    } catch (...) {
      Fail(run, std::current_exception());
    }
  }
}

void EngineLoop::Round() {
  DecodePending();
  RestartRounds();
  DecodeCandidates();
  ScoreRound();
}

void EngineLoop::Retire() {
  std::vector<std::unique_ptr<PromptRun>> done;
  std::vector<std::unique_ptr<PromptRun>> still;
  for (auto& run : active_) (Live(run.get()) ? still : done).push_back(std::move(run));
  active_ = std::move(still);
  for (auto& run : done) {
    if (run->trunk >= 0 || !run->candidates.empty() || run->best) ReleaseSequences(*run);
    if (run->reward_begun) {
      run->result.stats.reward_tokens_decoded = reward_->TokensDecoded(run->slot);
      run->result.stats.reward_rows_truncated = reward_->RowsTruncated(run->slot);
      try {
        reward_->Finish(run->slot);
      } catch (...) {
        if (!run->error) run->error = std::current_exception();
      }
    }
    if (run->slot >= 0) {
      free_slots_.push_back(run->slot);
      run->slot = -1;
      seqs_reserved_ -= run->reserved_seqs;
      cells_reserved_ -= run->reserved_cells;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& run : done) {
      live_.erase(run->id);
      if (run->error) {
        ++metrics_.requests_failed;
      } else {
        ++metrics_.requests_finished;
        if (run->cancelled) ++metrics_.requests_cancelled;
        metrics_.tokens_accepted += run->result.stats.tokens_accepted;
      }
    }
    PublishLocked();
  }
  // Outcomes go out last: a sink may submit again, and finds the ids and cells freed.
  for (auto& run : done) {
    try {
      if (run->error) {
        run->sink->OnError(run->error);
      } else {
        run->sink->OnResult(std::move(run->result));
      }
    } catch (...) {
      // A sink that throws here has nobody left to tell.
    }
  }
}

void EngineLoop::PublishLocked() {
  metrics_.requests_active = static_cast<int64_t>(active_.size());
  metrics_.tokens_sampled = counters_.tokens_sampled;
  metrics_.rounds = counters_.rounds;
  metrics_.candidates_sampled = counters_.candidates_sampled;
  metrics_.decode_calls = counters_.decode_calls;
  metrics_.decode_tokens = counters_.decode_tokens;
  metrics_.decode_seconds = counters_.decode_seconds;
  metrics_.reward_calls = counters_.reward_calls;
  metrics_.reward_rows = counters_.reward_rows;
  metrics_.reward_seconds = counters_.reward_seconds;
  metrics_.kv_stream_copies = counters_.kv_stream_copies;
  if (pool_) {
    metrics_.sequences_in_use = pool_->n_in_use();
    metrics_.sequences_total = pool_->n_total();
    metrics_.cells_in_use = pool_->n_cells_in_use();
  }
  if (sampling_) metrics_.sampling_threads = sampling_->threads_started();
}

void EngineLoop::Fail(PromptRun& run, std::exception_ptr error) {
  run.finished = true;
  run.error = std::move(error);
}

void EngineLoop::ReleaseSequences(PromptRun& run) {
  ReleaseRound(run);
  if (run.best) {
    if (run.best->seq >= 0) pool_->Release(run.best->seq);
    run.best.reset();
  }
  if (run.trunk >= 0) pool_->Release(run.trunk);
  run.trunk = -1;
}

// Each event's counters, the request's and the engine's, in one place.
void EngineLoop::CountDecode(const DecodedView& view) {
  ++counters_.decode_calls;
  counters_.decode_tokens += view.n_tokens;
  counters_.decode_seconds += view.seconds;
}

void EngineLoop::CountRound(PromptRun& run, int32_t width) {
  ++run.result.stats.rounds;
  run.candidates_sampled += width;
  ++counters_.rounds;
  counters_.candidates_sampled += width;
}

void EngineLoop::CountDraw(PromptRun& run, bool on_backend) {
  ++run.result.stats.policy_tokens_sampled;
  ++counters_.tokens_sampled;
  if (on_backend) ++run.result.stats.backend_tokens_sampled;
}

void EngineLoop::CountStreamCopy() { counters_.kv_stream_copies += StreamCopies(); }

void EngineLoop::AddPolicySeconds(const std::vector<PromptRun*>& runs, double seconds) {
  for (PromptRun* run : runs) run->result.stats.seconds_policy += seconds;
}

// Step 0 of a round: the trunk's undecoded tokens (a new prompt, or the last token of the
// segment accepted last round), so that the round's first tokens come from its logits.
void EngineLoop::DecodePending() {
  std::vector<DecodeJob> jobs;
  std::vector<PromptRun*> runs;
  for (auto& owned : active_) {
    PromptRun* run = owned.get();
    if (!Live(run) || run->pending.empty()) continue;
    const int32_t n = static_cast<int32_t>(run->pending.size());
    jobs.push_back({run->trunk, run->n_past, run->pending.data(), n, true});
    runs.push_back(run);
  }
  if (jobs.empty()) return;
  double seconds = 0.0;
  runner_->Run(jobs, [&](const DecodedView& view) {
    seconds += view.seconds;
    CountDecode(view);
    const auto start = Clock::now();
    for (const DecodedOutput& out : view.outputs) {
      PromptRun& run = *runs[out.job];
      StartFromTrunk(run, out.batch_index, run.policy->Cap(run));
    }
    seconds += SecondsSince(start);
  });
  AddPolicySeconds(runs, seconds);
}

void EngineLoop::StartFromTrunk(PromptRun& run, int32_t batch_index, int32_t cap_limit) {
  const int32_t n = static_cast<int32_t>(run.pending.size());
  run.n_past += n;
  run.result.stats.policy_tokens_decoded += n;
  run.pending.clear();
  const float* row = nullptr;
  // A trunk that carries a chain (plain mode on the backend) gives a token, not logits.
  if (pool_->AttachedSampler(run.trunk) != nullptr) {
    run.first_token = context_->SampledToken(batch_index);
  } else {
    row = context_->Logits(batch_index);
    // A STARS round that accepts nothing starts the next one from the same logits: keep them.
    // Otherwise the row is read in place, before the next decode overwrites it.
    if (run.policy->MayRetry()) {
      run.logits.assign(row, row + tokenizer_.n_vocab());
      row = run.logits.data();
    }
  }
  StartRound(run, cap_limit, row);
}

void EngineLoop::RestartRounds() {
  const auto start = Clock::now();
  std::vector<PromptRun*> runs;
  for (auto& owned : active_) {
    // DecodePending started the rounds of every trunk it decoded.
    if (!Live(owned.get()) || !owned->candidates.empty()) continue;
    runs.push_back(owned.get());
    StartRound(*owned, owned->policy->Cap(*owned), owned->logits.data());
  }
  AddPolicySeconds(runs, SecondsSince(start));
}

void EngineLoop::StartRound(PromptRun& run, int32_t cap_limit, const float* logits) {
  RoundPricing pricing;
  pricing.other_prompts = static_cast<int32_t>(std::count_if(
                              active_.begin(), active_.end(),
                              [](const std::unique_ptr<PromptRun>& r) { return Live(r.get()); })) -
                          1;
  pricing.costs = &costs_;
  const int32_t n = run.policy->RoundSize(run, pricing);
  run.candidates.clear();
  run.candidates.reserve(static_cast<size_t>(n));
  CountRound(run, n);
  const int32_t cap = std::min(run.policy->Cap(run), cap_limit);
  // Attempt j of segment s: the j-th attempt whatever round it falls in (best-of-N's N
  // responses are the attempts of one segment).
  const int32_t first_attempt = run.policy->FirstAttempt();
  const Sampler* trunk_chain = pool_->AttachedSampler(run.trunk);
  for (int32_t slot = 0; slot < n; ++slot) {
    const uint64_t key =
        AttemptKey(*run.params.seed, run.key, static_cast<uint64_t>(run.segment_index()),
                   static_cast<uint64_t>(first_attempt + slot));
    // Plain mode: one chain for the whole response (lent from round to round, or on the
    // backend continued from the trunk's, which drew this round's first token).
    Sampler chain = trunk_chain != nullptr ? trunk_chain->Clone()
                    : run.plain_sampler ? std::move(*run.plain_sampler)
                                        : Sampler(run.params.sampling, key, tokenizer_.n_vocab());
    // An attempt's own chain starts fresh: a repetition penalty must see the response so far.
    if (trunk_chain == nullptr && !run.plain_sampler &&
        run.params.sampling.repeat_penalty != 1.0f) {
      chain.Prime(run.response_tokens);
    }
    run.candidates.emplace_back(pool_->Fork(run.trunk), key, std::move(chain), run.n_past, cap);
    CountStreamCopy();
    run.plain_sampler.reset();
  }
  // The first tokens: the trunk's in-graph draw, or each candidate's own chain on the trunk's
  // logits (the candidates share that one output row, so llama.cpp cannot draw them).
  std::vector<SamplingJob>& jobs = first_tokens_;
  jobs.clear();
  if (trunk_chain == nullptr) {
    for (Candidate& candidate : run.candidates) {
      jobs.push_back({&candidate.sampler, logits, LogprobsWanted(run.params)});
    }
    sampling_->Sample(jobs, tokenizer_.n_vocab());
  }
  for (size_t i = 0; i < run.candidates.size(); ++i) {
    Candidate& candidate = run.candidates[i];
    CountDraw(run, trunk_chain != nullptr);
    llama_token token = LLAMA_TOKEN_NULL;
    const LogprobsOf* logprobs = nullptr;
    if (trunk_chain != nullptr) {
      token = run.first_token;
    } else {
      token = jobs[i].token;
      if (jobs[i].n_top >= 0) logprobs = &jobs[i].logprobs;
    }
    const bool more =
        PushToken(tokenizer_, run.params.stop, run.response_text, token, logprobs, &candidate);
    // A plain candidate at its cap still carries the chain: as the trunk, its sequence draws
    // the next round's first token.
    const bool carries = more || (run.policy->OneChain() && !candidate.ends_response);
    if (run.backend && carries) {
      candidate.on_backend = pool_->AttachSampler(candidate.seq, &candidate.sampler);
      if (!candidate.on_backend) {
        run.backend = false;
        run.result.stats.sampling_fallback = "llama.cpp would not take the sampler chain";
      }
    }
  }
}

// Steps 1..K-1: one llama_decode per step for every live candidate of every request (more only
// when they outnumber n_batch). A candidate's last token is only decoded if it is accepted
// (next round's step 0). Cancels take effect between steps. Plain requests join at any step:
// their prompt rides in the step's batch, and their first segment ends with the round.
void EngineLoop::DecodeCandidates() {
  std::vector<DecodeJob> jobs;
  std::vector<std::pair<PromptRun*, Candidate*>> owners;  // nullptr candidate: a prefill
  std::vector<SamplingJob> sampling;
  std::vector<PromptRun*> runs;
  for (;;) {
    ApplyCancels();
    jobs.clear();
    owners.clear();
    runs.clear();
    int32_t steps_left = 0;  // tokens the round's longest live candidate still samples
    for (auto& owned : active_) {
      PromptRun* run = owned.get();
      if (!Live(run)) continue;
      bool any = false;
      for (Candidate& candidate : run->candidates) {
        if (candidate.done) continue;
        jobs.push_back({candidate.seq, candidate.next_pos, &candidate.tokens.back(), 1, true});
        owners.emplace_back(run, &candidate);
        steps_left =
            std::max(steps_left, candidate.cap - static_cast<int32_t>(candidate.tokens.size()));
        any = true;
      }
      if (any) runs.push_back(run);
    }
    if (jobs.empty()) return;
    for (PromptRun* run : AdmitQueued(true)) {
      if (!Live(run)) continue;
      jobs.push_back({run->trunk, run->n_past, run->pending.data(),
                      static_cast<int32_t>(run->pending.size()), true});
      owners.emplace_back(run, nullptr);
      runs.push_back(run);
    }
    double seconds = 0.0;
    runner_->Run(jobs, [&](const DecodedView& view) {
      // Only views of one token per sequence price a step: a prompt's prefill would not.
      if (view.n_tokens == static_cast<int32_t>(view.outputs.size())) {
        costs_.RecordStep(view.n_tokens, view.seconds);
      }
      seconds += view.seconds;
      CountDecode(view);
      const auto start = Clock::now();
      sampling.clear();
      for (const DecodedOutput& out : view.outputs) {
        auto& [run, candidate] = owners[out.job];
        if (candidate == nullptr) {
          // A joining plain request's prompt is in: its round starts now, as long as the
          // round's remaining steps.
          StartFromTrunk(*run, out.batch_index, steps_left);
          continue;
        }
        // Only the rows sampled on the host are read as logits.
        if (!candidate->on_backend) {
          sampling.push_back({&candidate->sampler, context_->Logits(out.batch_index),
                              LogprobsWanted(run->params)});
        }
      }
      sampling_->Sample(sampling, tokenizer_.n_vocab());
      size_t i = 0;
      for (const DecodedOutput& out : view.outputs) {
        auto& [run, candidate] = owners[out.job];
        if (candidate == nullptr) continue;
        CountDraw(*run, candidate->on_backend);
        llama_token token = LLAMA_TOKEN_NULL;
        const LogprobsOf* logprobs = nullptr;
        if (candidate->on_backend) {
          token = context_->SampledToken(out.batch_index);
        } else {
          const SamplingJob& job = sampling[i++];
          token = job.token;
          if (job.n_top >= 0) logprobs = &job.logprobs;
        }
        PushToken(tokenizer_, run->params.stop, run->response_text, token, logprobs, candidate);
      }
      seconds += SecondsSince(start);
    });
    for (auto& [run, candidate] : owners) {
      if (candidate == nullptr) continue;
      ++candidate->next_pos;
      ++run->result.stats.policy_tokens_decoded;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      PublishLocked();  // /metrics sees every step, not only round ends
    }
    AddPolicySeconds(runs, seconds);
  }
}

void EngineLoop::CheckScores(const std::vector<RewardRow>& rows,
                             const std::vector<double>& scores) const {
  if (scores.size() != rows.size()) {
    throw RewardError("reward returned " + std::to_string(scores.size()) + " values for " +
                      std::to_string(rows.size()) + " rows");
  }
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) {
      throw RewardError("reward returned a non-finite value (" + std::to_string(scores[i]) +
                        ") for row " + std::to_string(i));
    }
  }
}

std::vector<std::vector<double>> EngineLoop::ScoreIsolated(
    const std::vector<PromptRun*>& runs, const std::vector<std::vector<RewardRow>>& rows) {
  std::vector<std::vector<double>> out(runs.size());
  if (runs.empty()) return out;
  auto score = [&](const std::vector<PromptRun*>& who, const std::vector<RewardRow>& all) {
    std::vector<double> scores;
    const auto start = Clock::now();
    reward_->Score(all, &scores);
    const double seconds = SecondsSince(start);
    costs_.RecordReward(static_cast<int64_t>(all.size()), seconds);
    ++counters_.reward_calls;
    counters_.reward_rows += static_cast<int64_t>(all.size());
    counters_.reward_seconds += seconds;
    for (PromptRun* run : who) {
      run->result.stats.seconds_reward += seconds;
      ++run->result.stats.reward_calls;
    }
    CheckScores(all, scores);
    return scores;
  };
  std::vector<RewardRow> all;
  for (const auto& r : rows) all.insert(all.end(), r.begin(), r.end());
  std::exception_ptr joint_error;
  try {
    const std::vector<double> scores = score(runs, all);
    size_t at = 0;
    for (size_t i = 0; i < runs.size(); ++i) {
      out[i].assign(scores.begin() + static_cast<std::ptrdiff_t>(at),
                    scores.begin() + static_cast<std::ptrdiff_t>(at + rows[i].size()));
      at += rows[i].size();
      runs[i]->result.stats.reward_rows += static_cast<int64_t>(rows[i].size());
    }
    return out;
  } catch (...) {
    joint_error = std::current_exception();
  }
  // The joint call failed. A lone request fails with its error. Otherwise each request is
  // scored alone: a reward that fails only on the joint call (a transient error, a limit on rows
  // per call) then fails nobody, and one that fails on some requests' rows fails just those,
  // each with the error of its own call (an error is never shared between requests).
  if (runs.size() == 1) {
    Fail(*runs.front(), joint_error);
    out.front().clear();
    return out;
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    try {
      out[i] = score({runs[i]}, rows[i]);
      runs[i]->result.stats.reward_rows += static_cast<int64_t>(rows[i].size());
    } catch (...) {
      Fail(*runs[i], std::current_exception());
      out[i].clear();
    }
  }
  return out;
}

void EngineLoop::ScoreRound() {
  std::vector<PromptRun*> scored;
  std::vector<std::vector<RewardRow>> rows;
  for (auto& owned : active_) {
    PromptRun& run = *owned;
    if (!Live(&run) || !run.policy->ScoresCandidates()) continue;
    std::vector<RewardRow>& mine = rows.emplace_back();
    // r(x, empty) for the threshold ramp rides along with the first round's call.
    if (run.policy->WantsEmptyRow()) mine.push_back(MakeRow(run, nullptr));
    for (const Candidate& candidate : run.candidates) mine.push_back(MakeRow(run, &candidate));
    scored.push_back(&run);
  }
  const std::vector<std::vector<double>> scores = ScoreIsolated(scored, rows);
  std::vector<PromptRun*> finished;  // ended without their final text scored (plain)
  std::vector<std::vector<RewardRow>> final_rows;
  size_t next = 0;
  for (auto& owned : active_) {
    PromptRun& run = *owned;
    const bool scores_candidates = run.policy->ScoresCandidates();
    const std::vector<double>* rewards = nullptr;
    if (scores_candidates) {
      if (next >= scored.size() || scored[next] != &run) continue;  // not live at scoring
      rewards = &scores[next++];
    }
    if (!Live(&run)) continue;
    try {
      Decide(run, rewards != nullptr ? *rewards : std::vector<double>{});
    } catch (...) {
      Fail(run, std::current_exception());
      continue;
    }
    if (!scores_candidates && run.finished && reward_ != nullptr && !run.error) {
      finished.push_back(&run);
      final_rows.push_back({MakeRow(run, nullptr)});
    }
  }
  // The reward of each finished response that no round scored.
  const std::vector<std::vector<double>> finals = ScoreIsolated(finished, final_rows);
  for (size_t i = 0; i < finished.size(); ++i) {
    if (!finished[i]->error) finished[i]->result.reward = finals[i].at(0);
  }
}

void EngineLoop::Decide(PromptRun& run, const std::vector<double>& rewards) {
  // The candidates' own rewards: the last of the rows (the empty response's may lead).
  for (size_t j = 0; j < run.candidates.size() && rewards.size() >= run.candidates.size(); ++j) {
    run.candidates[j].reward = rewards[rewards.size() - run.candidates.size() + j];
  }
  Verdict verdict = run.policy->Decide(run, rewards);
  if (verdict.kind == Verdict::Kind::kContinue) {
    if (verdict.keep_slot >= 0) {
      // This round holds the best so far: keep its sequence for a later fallback.
      if (run.best) pool_->Release(run.best->seq);
      run.best.emplace(std::move(run.candidates[verdict.keep_slot]));
      run.candidates.erase(run.candidates.begin() + verdict.keep_slot);
      // Out of the ids next round's candidates take (isolated: a copy under a lasting id).
      run.best->seq = pool_->Keep(run.best->seq);
      CountStreamCopy();
      run.best->on_backend = false;
    }
    ReleaseRound(run);
    return;
  }
  if (verdict.result_reward) run.result.reward = verdict.result_reward;
  Candidate& chosen = verdict.chosen_slot >= 0 ? run.candidates[verdict.chosen_slot] : *run.best;
  AcceptCandidate(run, chosen, std::move(verdict.segment));
}

void EngineLoop::ReleaseRound(PromptRun& run) {
  for (Candidate& candidate : run.candidates) {
    if (candidate.seq >= 0) pool_->Release(candidate.seq);
  }
  run.candidates.clear();
}

void EngineLoop::AcceptCandidate(PromptRun& run, Candidate& chosen, Segment segment) {
  const GenerationParams& params = run.params;
  run.trunk = pool_->Adopt(run.trunk, chosen.seq);
  CountStreamCopy();
  const int32_t n_tokens = static_cast<int32_t>(chosen.tokens.size());
  // The trunk now holds the candidate's decoded tokens; the rest waits for the next round.
  const int32_t n_decoded = std::min(chosen.n_decoded(), n_tokens);
  run.n_past = chosen.fork_pos + n_decoded;
  // A stop string cut decoded tokens off the candidate: drop their cells.
  if (chosen.n_decoded() > n_tokens) pool_->Rewind(run.trunk, run.n_past);
  run.pending.assign(chosen.tokens.begin() + n_decoded, chosen.tokens.end());
  // A stop string that began in the accepted response ends it where the stop string starts.
  if (chosen.trunk_cut > 0) CutResponse(run, run.response_text.size() - chosen.trunk_cut);
  const size_t base = run.response_text.size();
  for (size_t offset : chosen.offsets) run.response_offsets.push_back(base + offset);
  run.response_tokens.insert(run.response_tokens.end(), chosen.tokens.begin(), chosen.tokens.end());
  run.response_logprobs.insert(run.response_logprobs.end(), chosen.logprobs.begin(),
                               chosen.logprobs.end());
  run.response_text += chosen.text;
  run.result.stats.tokens_accepted += n_tokens;

  // Hold back a split UTF-8 character or the start of a stop string until the response grows
  // or ends, so that no segment shows text that a later one takes back.
  const bool ends = chosen.ends_response || run.response_length() >= params.max_tokens;
  // A response that ends inside a character (max_tokens cut it) drops the partial character;
  // its tokens stay, as sampled.
  if (ends) run.response_text.resize(std::max(run.n_shown, CompleteUtf8Prefix(run.response_text)));
  const size_t shown = ends ? run.response_text.size()
                            : std::max(run.n_shown, ShowablePrefix(run.response_text, params.stop));
  segment.text = run.response_text.substr(run.n_shown, shown - run.n_shown);
  run.n_shown = shown;
  segment.tokens.assign(chosen.tokens.begin(), chosen.tokens.end());
  segment.logprobs = std::move(chosen.logprobs);
  const bool chosen_ends = chosen.ends_response;
  std::string chosen_text = std::move(chosen.text);  // the candidate is released below
  if (run.policy->OneChain() && !chosen.on_backend) {
    run.plain_sampler.emplace(std::move(chosen.sampler));
  } else if (!run.policy->OneChain()) {
    // The trunk's logits feed the next round's host draws of every candidate.
    pool_->DetachSampler(run.trunk);
  }

  chosen.seq = -1;  // now the trunk: not released with the other candidates
  ReleaseRound(run);
  if (run.best) {
    if (run.best->seq >= 0) pool_->Release(run.best->seq);
    run.best.reset();
  }
  if (chosen_ends) {
    Finish(run, FinishReason::kStop);
  } else if (run.response_length() >= params.max_tokens) {
    Finish(run, FinishReason::kLength);
  }
  // The reward's trunk only matters for a request that goes on.
  if (reward_ != nullptr && !run.finished) {
    reward_->Commit(run.slot, segment.tokens.data(), n_tokens, chosen_text);
  }
  run.result.segments.push_back(segment);
  run.sink->OnSegment(run.result.segments.back());
}

// Cuts the accepted response to `size` bytes, with the tokens that start before it. Only held
// back text is ever cut (ShowablePrefix), so what segments showed stays shown.
void EngineLoop::CutResponse(PromptRun& run, size_t size) {
  size = std::max(size, run.n_shown);
  int64_t dropped = 0;
  while (!run.response_offsets.empty() && run.response_offsets.back() >= size) {
    run.response_offsets.pop_back();
    run.response_tokens.pop_back();
    if (!run.response_logprobs.empty()) run.response_logprobs.pop_back();
    ++dropped;
  }
  run.response_text.resize(size);
  run.result.stats.tokens_accepted -= dropped;
  // The dropped tokens came last: take them off the segments that accepted them.
  for (auto it = run.result.segments.rbegin(); dropped > 0 && it != run.result.segments.rend();
       ++it) {
    const int64_t n = std::min<int64_t>(dropped, static_cast<int64_t>(it->tokens.size()));
    it->tokens.resize(it->tokens.size() - static_cast<size_t>(n));
    if (!it->logprobs.empty()) it->logprobs.resize(it->tokens.size());
    dropped -= n;
  }
}

void EngineLoop::Finish(PromptRun& run, FinishReason reason) {
  run.finished = true;
  Stats& stats = run.result.stats;
  stats.tokens_wasted = stats.policy_tokens_sampled - stats.tokens_accepted;
  stats.mean_round_width =
      stats.rounds > 0 ? static_cast<double>(run.candidates_sampled) / stats.rounds : 0.0;
  stats.seconds_total = run.slot >= 0 ? SecondsSince(run.admitted) : 0.0;
  run.result.finish_reason = reason;
  run.result.text = run.response_text;
  run.result.tokens.assign(run.response_tokens.begin(), run.response_tokens.end());
  run.result.logprobs = run.response_logprobs;
}

}  // namespace stars
