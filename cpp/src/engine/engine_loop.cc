#include "engine/engine_loop.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "algorithm/admission.h"
#include "algorithm/attempt_key.h"
#include "algorithm/response_text.h"
#include "llama/sampler.h"
#include "stars/errors.h"
#include "stars/runtime.h"

namespace stars {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool Live(const PromptRun* run) { return !run->finished; }

}  // namespace

EngineLoop::EngineLoop(PolicyDecoderFactory make_decoder,
                       std::shared_ptr<const Vocabulary> vocabulary, std::shared_ptr<Reward> reward,
                       const EngineOptions& options, bool backend, int32_t hidden_state_size)
    : vocabulary_holder_(std::move(vocabulary)),
      vocabulary_(*vocabulary_holder_),
      reward_holder_(std::move(reward)),
      reward_(reward_holder_.get()),
      options_(options),
      backend_(backend),
      hidden_states_(hidden_state_size > 0),
      queue_(options.max_queue),
      costs_(options.kv_layout == KvLayout::kIsolated),
      round_decoder_(std::move(make_decoder), vocabulary_, &costs_, &counters_),
      scorer_(reward_, &costs_, &counters_) {
  round_decoder_.ReadHiddenStates(hidden_state_size);
}

EngineLoop::~EngineLoop() { Close(); }

// ---------------------------------------------------------------------------------------------
// Requests in and out (any thread).

std::vector<RequestId> EngineLoop::Submit(std::vector<std::unique_ptr<PromptRun>> runs,
                                          bool bounded) {
  std::lock_guard<std::mutex> lock(thread_mutex_);
  std::vector<RequestId> ids = queue_.Push(std::move(runs), bounded);
  if (!thread_.joinable()) {
    // One thread for the engine's life, started by its first request.
    thread_ = std::thread([this] {
      Main();
      bool abandoned = false;
      {
        std::lock_guard<std::mutex> lock(thread_mutex_);
        abandoned = abandoned_;
      }
      if (abandoned) delete this;  // nobody else holds it (Abandon)
    });
    thread_id_ = thread_.get_id();
  }
  return ids;
}

void EngineLoop::Close() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(thread_mutex_);
    queue_.Close();
    thread.swap(thread_);
  }
  if (thread.joinable()) thread.join();
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
  std::lock_guard<std::mutex> lock(loop->thread_mutex_);
  loop->queue_.Close();
  if (loop->thread_.joinable()) {
    loop->abandoned_ = true;
    {
      std::lock_guard<std::mutex> threads_lock(abandoned_mutex);
      abandoned_threads->push_back(std::move(loop->thread_));
    }
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

// ---------------------------------------------------------------------------------------------
// The loop (its own thread).

void EngineLoop::Main() {
  while (queue_.Wait(!active_.empty())) {
    try {
      ApplyCancels();
      Admit();
      if (!active_.empty()) Round();
    } catch (...) {
      // A fault of the engine itself: the requests it was running fail with it (all that wait
      // too when the decoder cannot be made); the loop goes on.
      FailAll(std::current_exception(), !round_decoder_.made());
    }
    Retire();
  }
  FailAll(std::make_exception_ptr(EngineClosedError("the engine was closed")), true);
  Retire();
}

void EngineLoop::FailAll(std::exception_ptr error, bool queued_too) {
  for (auto& run : active_) {
    if (Live(run.get())) FailRun(*run, error);
  }
  if (!queued_too) return;
  for (auto& run : queue_.TakeAll()) {
    FailRun(*run, error);
    active_.push_back(std::move(run));
  }
}

void EngineLoop::ApplyCancels() {
  std::vector<std::unique_ptr<PromptRun>> dropped;
  const std::unordered_set<RequestId> cancels = queue_.TakeCancels(&dropped);
  for (auto& run : dropped) {
    run->cancelled = true;
    run->finished = true;
    run->result.finish_reason = FinishReason::kCancelled;
    active_.push_back(std::move(run));  // Retire hands it out
  }
  if (cancels.empty()) return;
  for (auto& run : active_) {
    if (Live(run.get()) && cancels.count(run->id) != 0) {
      run->cancelled = true;
      ReleaseSequences(*run);
      Finish(*run, FinishReason::kCancelled);
    }
  }
}

void EngineLoop::Admit() {
  if (queue_.empty()) return;
  // Sequence ids are not free: llama.cpp sizes its output rows and its worst-case graph by
  // them (256 ids hold ~100 MB for a 49k vocabulary). The context takes what the waiting
  // requests need, and is made again, larger, when nothing runs and the queue needs more.
  const bool made = round_decoder_.made();
  const bool isolated = options_.kv_layout == KvLayout::kIsolated;
  ContextDemand demand;
  queue_.ForEachWaiting([&](const PromptRun& run) {
    if (!made || active_.empty()) demand.wanted_seqs += run.reserved_seqs;
    if (isolated) demand.longest_cells = std::max(demand.longest_cells, run.reserved_cells);
  });
  demand.have = made ? ContextSize{decoder().n_seq(), decoder().n_cells_per_seq()} : ContextSize{};
  demand.n_seq_max = options_.n_seq_max;
  demand.n_ctx = options_.n_ctx;
  demand.layout = options_.kv_layout;
  demand.max_sequences = MaxSequences();
  const ContextSize size = SizeContext(demand);
  const bool grow =
      made && (size.n_seq > demand.have.n_seq || (isolated && size.n_cells > demand.have.n_cells));
  // Made again only when that is larger: a queue beyond 256 ids waits, it does not remake.
  if (!made || (active_.empty() && grow)) {
    ContextOptions options;
    options.n_ctx = size.n_cells;
    options.n_seq_max = size.n_seq;
    options.layout = options_.kv_layout;
    options.n_threads = options_.n_threads;
    options.kv_type = options_.kv_type;
    round_decoder_.Make(options);
    ++counters_.contexts_created;
  }
  AdmitQueued(false);
}

std::vector<PromptRun*> EngineLoop::AdmitQueued(bool plain_only) {
  PolicyDecoder& pool = decoder();
  // Reserve a request's peak needs up front, so a round never runs out of ids or cells.
  std::vector<std::unique_ptr<PromptRun>> admitted = queue_.TakeWhile([&](const PromptRun& run) {
    if (plain_only && !run.policy->OneChain()) return false;
    const bool cells_fit = pool.isolated() ? run.reserved_cells <= pool.n_cells_per_seq()
                                           : cells_reserved_ + run.reserved_cells <= pool.n_cells();
    if (seqs_reserved_ + run.reserved_seqs > pool.n_seq() || !cells_fit) return false;
    seqs_reserved_ += run.reserved_seqs;
    cells_reserved_ += run.reserved_cells;
    return true;
  });
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
  run.trunk = decoder().AcquireLasting();
  run.pending = run.prompt_tokens;
  run.result.stats.prompt_tokens = static_cast<int64_t>(run.prompt_tokens.size());
  if (run.policy->OneChain()) {
    run.plain_sampler.emplace(run.params.sampling, AttemptKey(*run.params.seed, run.key, 0, 0),
                              vocabulary_.n_vocab());
  }
  if (backend_ && run.params.logprobs) {
    run.result.stats.sampling_fallback =
        "logprobs needs each token's logits, which backend sampling leaves on the device";
  } else if (backend_ && run.policy->EntropyEnd()) {
    run.result.stats.sampling_fallback =
        "mode cards reads each step's entropy from the logits on the host";
  } else if (backend_ && hidden_states_ && run.policy->ScoresCandidates()) {
    run.result.stats.sampling_fallback =
        "the probe reward reads each candidate's hidden state, which backend sampling skips";
  } else if (backend_) {
    const Sampler probe(run.params.sampling, 0, vocabulary_.n_vocab());
    run.backend = probe.backend_capable();
    if (!run.backend) {
      run.result.stats.sampling_fallback =
          "a sampler of this request's chain (typical_p, repeat_penalty) has no backend "
          "implementation in llama.cpp";
    } else if (run.policy->OneChain()) {
      // The trunk draws each round's first token in the graph, with the response's one chain.
      run.backend = decoder().AttachSampler(run.trunk, &*run.plain_sampler);
      if (run.backend) {
        run.plain_sampler.reset();
      } else {
        run.result.stats.sampling_fallback = "llama.cpp would not take the sampler chain";
      }
    }
  }
  if (reward_ != nullptr) {
    try {
      reward_->BeginTokens(run.slot, run.reward_text, run.prompt_tokens);
      run.reward_begun = true;
    } catch (...) {
      FailRun(run, std::current_exception());
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
  queue_.Retire(done);
  Publish();
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

void EngineLoop::Publish() {
  queue_.Publish([&](EngineMetrics* metrics) {
    metrics->requests_active = static_cast<int64_t>(active_.size());
    counters_.Publish(metrics);
    if (round_decoder_.made()) {
      metrics->sequences_in_use = decoder().n_seq_in_use();
      metrics->sequences_total = decoder().n_seq();
      metrics->cells_in_use = decoder().n_cells_in_use();
      metrics->cells_total = decoder().n_cells();
    }
    if (round_decoder_.sampling() != nullptr) {
      metrics->sampling_threads = round_decoder_.sampling()->threads_started();
    }
  });
}

void EngineLoop::ReleaseSequences(PromptRun& run) {
  ReleaseRound(run);
  if (run.best) {
    if (run.best->seq >= 0) decoder().Release(run.best->seq);
    run.best.reset();
  }
  if (run.trunk >= 0) decoder().Release(run.trunk);
  run.trunk = -1;
}

int32_t EngineLoop::LiveRuns() const {
  return static_cast<int32_t>(
      std::count_if(active_.begin(), active_.end(),
                    [](const std::unique_ptr<PromptRun>& run) { return Live(run.get()); }));
}

void EngineLoop::DecodePending() {
  std::vector<PromptRun*> runs;
  for (auto& owned : active_) {
    if (Live(owned.get()) && !owned->pending.empty()) runs.push_back(owned.get());
  }
  const double seconds = round_decoder_.DecodeTrunks(runs, [&](PromptRun& run, int32_t index) {
    StartFromTrunk(run, index, run.policy->Cap(run));
  });
  LoopCounters::PolicySeconds(runs, seconds);
}

void EngineLoop::StartFromTrunk(PromptRun& run, int32_t batch_index, int32_t cap_limit) {
  const int32_t n = static_cast<int32_t>(run.pending.size());
  run.n_past += n;
  counters_.Decoded(run, n);
  run.pending.clear();
  const float* row = nullptr;
  // A trunk that carries a chain (plain mode on the backend) gives a token, not logits.
  if (decoder().AttachedSampler(run.trunk) != nullptr) {
    run.first_token = decoder().SampledToken(batch_index);
  } else {
    row = decoder().Logits(batch_index);
    // A STARS round that accepts nothing starts the next one from the same logits: keep them.
    // Otherwise the row is read in place, before the next decode overwrites it.
    if (run.policy->MayRetry()) {
      run.logits.assign(row, row + vocabulary_.n_vocab());
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
  LoopCounters::PolicySeconds(runs, SecondsSince(start));
}

void EngineLoop::StartRound(PromptRun& run, int32_t cap_limit, const float* logits) {
  RoundPricing pricing;
  pricing.other_prompts = LiveRuns() - 1;
  pricing.costs = &costs_;
  const int32_t n = run.policy->RoundSize(run, pricing);
  run.candidates.clear();
  run.candidates.reserve(static_cast<size_t>(n));
  counters_.Round(run, n);
  const int32_t cap = std::min(run.policy->Cap(run), cap_limit);
  // Attempt j of segment s: the j-th attempt whatever round it falls in (best-of-N's N
  // responses are the attempts of one segment).
  const int32_t first_attempt = run.policy->FirstAttempt();
  const Sampler* trunk_chain = decoder().AttachedSampler(run.trunk);
  std::vector<SamplingJob>& jobs = first_tokens_;
  jobs.clear();
  for (int32_t slot = 0; slot < n; ++slot) {
    const uint64_t key =
        AttemptKey(*run.params.seed, run.key, static_cast<uint64_t>(run.segment_index()),
                   static_cast<uint64_t>(first_attempt + slot));
    // Plain mode: one chain for the whole response (lent from round to round, or on the
    // backend continued from the trunk's, which drew this round's first token).
    Sampler chain = trunk_chain != nullptr ? trunk_chain->Clone()
                    : run.plain_sampler ? std::move(*run.plain_sampler)
                                        : Sampler(run.params.sampling, key, vocabulary_.n_vocab());
    // An attempt's own chain starts fresh: a repetition penalty must see the response so far.
    if (trunk_chain == nullptr && !run.plain_sampler &&
        run.params.sampling.repeat_penalty != 1.0f) {
      chain.Prime(run.response_tokens);
    }
    run.candidates.emplace_back(decoder().Fork(run.trunk), key, std::move(chain), run.n_past, cap);
    CountStreamCopy();
    run.plain_sampler.reset();
  }
  // The first tokens: the trunk's in-graph draw, or each candidate's own chain on the trunk's
  // logits (the candidates share that one output row, so llama.cpp cannot draw them).
  for (Candidate& candidate : run.candidates) {
    SamplingJob job;
    job.sampler = &candidate.sampler;
    job.logits = logits;
    job.n_top = LogprobsWanted(run.params);
    job.on_backend = trunk_chain != nullptr;
    job.token = run.first_token;
    jobs.push_back(job);
  }
  round_decoder_.Draw(jobs);
  for (size_t i = 0; i < run.candidates.size(); ++i) {
    Candidate& candidate = run.candidates[i];
    counters_.Draw(run, jobs[i].on_backend);
    const bool more = PushToken(vocabulary_, run.params.stop, run.response_text, jobs[i].token,
                                jobs[i].drawn_logprobs(), &candidate);
    // A plain candidate at its cap still carries the chain: as the trunk, its sequence draws
    // the next round's first token.
    const bool carries = more || (run.policy->OneChain() && !candidate.ends_response);
    if (run.backend && carries) {
      candidate.on_backend = decoder().AttachSampler(candidate.seq, &candidate.sampler);
      if (!candidate.on_backend) {
        run.backend = false;
        run.result.stats.sampling_fallback = "llama.cpp would not take the sampler chain";
      }
    }
  }
}

// Steps 1..K-1: one decode per step for every live candidate of every request (more only when
// they outnumber n_batch). Cancels take effect between steps. Plain requests join at any step:
// their prompt rides in the step's batch, and their first segment ends with the round.
void EngineLoop::DecodeCandidates() {
  std::vector<PromptRun*> runs;
  for (;;) {
    ApplyCancels();
    runs.clear();
    int32_t steps_left = 0;  // tokens the round's longest live candidate still samples
    for (auto& owned : active_) {
      PromptRun* run = owned.get();
      if (!Live(run)) continue;
      bool any = false;
      for (const Candidate& candidate : run->candidates) {
        if (candidate.done) continue;
        steps_left =
            std::max(steps_left, candidate.cap - static_cast<int32_t>(candidate.tokens.size()));
        any = true;
      }
      if (any) runs.push_back(run);
    }
    if (runs.empty()) return;
    std::vector<PromptRun*> joining;
    for (PromptRun* run : AdmitQueued(true)) {
      if (Live(run)) joining.push_back(run);
    }
    const double seconds =
        round_decoder_.Step(runs, joining, [&](PromptRun& run, int32_t batch_index) {
          // A joining plain request's prompt is in: its round starts now, as long as the
          // round's remaining steps.
          StartFromTrunk(run, batch_index, steps_left);
        });
    Publish();  // /metrics sees every step, not only round ends
    runs.insert(runs.end(), joining.begin(), joining.end());
    LoopCounters::PolicySeconds(runs, seconds);
  }
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
  const std::vector<std::vector<double>> scores = scorer_.Score(scored, rows);
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
      FailRun(run, std::current_exception());
      continue;
    }
    if (!scores_candidates && run.finished && reward_ != nullptr && !run.error) {
      finished.push_back(&run);
      final_rows.push_back({MakeRow(run, nullptr)});
    }
  }
  // The reward of each finished response that no round scored.
  const std::vector<std::vector<double>> finals = scorer_.Score(finished, final_rows);
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
      if (run.best) decoder().Release(run.best->seq);
      run.best.emplace(std::move(run.candidates[verdict.keep_slot]));
      run.candidates.erase(run.candidates.begin() + verdict.keep_slot);
      // Out of the ids next round's candidates take (isolated: a copy under a lasting id).
      run.best->seq = decoder().Keep(run.best->seq);
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
    if (candidate.seq >= 0) decoder().Release(candidate.seq);
  }
  run.candidates.clear();
}

void EngineLoop::AcceptCandidate(PromptRun& run, Candidate& chosen, Segment segment) {
  const GenerationParams& params = run.params;
  run.trunk = decoder().Adopt(run.trunk, chosen.seq);
  CountStreamCopy();
  const int32_t n_tokens = static_cast<int32_t>(chosen.tokens.size());
  // The trunk now holds the candidate's decoded tokens; the rest waits for the next round.
  const int32_t n_decoded = std::min(chosen.n_decoded(), n_tokens);
  run.n_past = chosen.fork_pos + n_decoded;
  // A stop string cut decoded tokens off the candidate, or a step padded it: drop those cells.
  if (chosen.n_decoded() > n_tokens || chosen.n_padding > 0)
    decoder().Rewind(run.trunk, run.n_past);
  run.pending.assign(chosen.tokens.begin() + n_decoded, chosen.tokens.end());
  // Every token decoded (an entropy rise ended it): the next round starts from its last row.
  if (!chosen.next_logits.empty()) run.logits = std::move(chosen.next_logits);
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
    decoder().DetachSampler(run.trunk);
  }

  chosen.seq = -1;  // now the trunk: not released with the other candidates
  ReleaseRound(run);
  if (run.best) {
    if (run.best->seq >= 0) decoder().Release(run.best->seq);
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
