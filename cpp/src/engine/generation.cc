#include "engine/generation.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "algorithm/attempt_key.h"
#include "algorithm/response_text.h"
#include "algorithm/round_width.h"
#include "engine/parallel_sampling.h"
#include "llama/sampler.h"
#include "stars/errors.h"

namespace stars {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

RewardRow MakeRow(const PromptRun& run, const Candidate* candidate) {
  RewardRow row;
  row.prompt = run.index;
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

}  // namespace

Generation::Generation(Context& context, const Tokenizer& tokenizer, Reward* reward,
                       const GenerationParams& params, const GenerateHooks& hooks,
                       RoundCostModel& costs)
    : context_(context),
      tokenizer_(tokenizer),
      reward_(reward),
      params_(params),
      hooks_(hooks),
      costs_(costs),
      pool_(context),
      batch_(context.n_batch()) {}

int32_t Generation::SequencesPerPrompt(const GenerationParams& params) {
  switch (params.mode) {
    case Mode::kPlain:
      return 2;
    case Mode::kBestOfN:
      return params.candidates + 1;
    case Mode::kStars:
      // The trunk, this round's candidates and the best of earlier rounds for the fallback.
      return params.candidates + 2;
  }
  return 0;
}

int64_t Generation::CellsPerPrompt(const GenerationParams& params, int64_t n_prompt) {
  const int64_t t = params.max_tokens;
  switch (params.mode) {
    case Mode::kPlain:
      return n_prompt + t;
    case Mode::kBestOfN:
      return n_prompt + static_cast<int64_t>(params.candidates) * t;
    case Mode::kStars:
      return n_prompt + t + static_cast<int64_t>(params.candidates + 1) * params.segment_tokens;
  }
  return 0;
}

std::vector<Result> Generation::Run(std::vector<PromptRun> runs) {
  const auto start = Clock::now();
  for (PromptRun& run : runs) queue_.push_back(&run);
  while (!queue_.empty() || !active_.empty()) {
    Admit();
    DecodePending();
    SampleFirstTokens();
    DecodeCandidates();
    ScoreRound();
  }
  std::vector<Result> results;
  results.reserve(runs.size());
  const double total = SecondsSince(start);
  for (PromptRun& run : runs) {
    run.result.stats.seconds_policy = seconds_policy_;
    run.result.stats.seconds_reward = seconds_reward_;
    run.result.stats.seconds_total = total;
    results.push_back(std::move(run.result));
  }
  return results;
}

void Generation::Admit() {
  while (!queue_.empty()) {
    PromptRun& run = *queue_.front();
    // Reserve a prompt's peak needs up front, so a round never runs out of ids or cells.
    if (seqs_reserved_ + run.reserved_seqs > pool_.n_total() ||
        cells_reserved_ + run.reserved_cells > context_.n_ctx()) {
      break;
    }
    queue_.pop_front();
    seqs_reserved_ += run.reserved_seqs;
    cells_reserved_ += run.reserved_cells;
    run.trunk = pool_.Acquire();
    run.pending = run.prompt_tokens;
    run.result.stats.prompt_tokens = static_cast<int64_t>(run.prompt_tokens.size());
    if (params_.mode == Mode::kStars) {
      run.search.emplace(params_.max_attempts);
      run.calibration.emplace(params_);
    }
    active_.push_back(&run);
  }
}

double Generation::Decode() {
  const auto start = Clock::now();
  context_.Decode(batch_);
  const double seconds = SecondsSince(start);
  seconds_policy_ += seconds;
  if (hooks_.check_interrupt) hooks_.check_interrupt();
  return seconds;
}

// Step 0 of a round: the trunk's undecoded tokens (a new prompt, or the last token of the
// segment accepted last round), so that the round's first tokens come from its logits. A batch
// larger than n_batch goes in chunks; each trunk's logits are saved after its last chunk.
void Generation::DecodePending() {
  const int32_t n_vocab = tokenizer_.n_vocab();
  std::vector<std::pair<PromptRun*, int32_t>> outputs;
  auto flush = [&] {
    if (batch_.empty()) return;
    Decode();
    for (auto& [run, index] : outputs) {
      const float* row = context_.Logits(index);
      run->logits.assign(row, row + n_vocab);
    }
    outputs.clear();
    batch_.Clear();
  };
  batch_.Clear();
  for (PromptRun* run : active_) {
    const int32_t n = static_cast<int32_t>(run->pending.size());
    for (int32_t i = 0; i < n; ++i) {
      if (batch_.size() == batch_.capacity()) flush();
      const int32_t index = batch_.Add(run->pending[i], run->n_past + i, run->trunk, i == n - 1);
      if (index >= 0) outputs.emplace_back(run, index);
    }
    run->n_past += n;
    run->result.stats.policy_tokens_decoded += n;
    run->pending.clear();
  }
  flush();
}

int32_t Generation::RoundSize(const PromptRun& run) const {
  switch (params_.mode) {
    case Mode::kPlain:
      return 1;
    case Mode::kBestOfN:
      return params_.candidates;
    case Mode::kStars:
      break;
  }
  const int32_t left = run.search->attempts_left();
  const int32_t widest = std::min(params_.candidates, left);
  if (params_.width == Width::kFixed) return widest;
  // A warm-up accepts nothing: exactly the attempts it still needs, in as few rounds as allowed.
  if (run.calibration->warming_up()) return std::min(widest, run.calibration->warmup_left());
  // The acceptance rate: the prompt's own so far, else the rate an auto threshold aims for,
  // else even odds (the first round at a float threshold).
  const int32_t length = run.response_length() + Cap(run);
  const std::optional<double> target = run.calibration->TargetAcceptance(length);
  const int32_t others = static_cast<int32_t>(active_.size()) - 1;
  // A first round that the engine has never measured as wide goes wide once, to measure it.
  if (run.attempts_considered == 0 && !costs_.HasMeasured(others + widest)) return widest;
  const double p = run.attempts_considered > 0 || !target
                       ? EstimateAcceptance(run.segments_accepted, run.attempts_considered)
                       : *target;
  // A candidate's first token comes from the trunk's logits and its last is decoded only if it
  // is accepted: cap - 1 batched steps. The other prompts' sequences decode alongside.
  const int32_t steps = Cap(run) - 1;
  return ChooseRoundWidth(widest, left, p,
                          [&](int32_t width) { return costs_.RoundSeconds(others, width, steps); });
}

int32_t Generation::Cap(const PromptRun& run) const {
  const int32_t left = params_.max_tokens - run.response_length();
  return params_.mode == Mode::kBestOfN ? left : std::min(params_.segment_tokens, left);
}

void Generation::SampleFirstTokens() {
  const auto start = Clock::now();
  const int32_t n_vocab = tokenizer_.n_vocab();
  for (PromptRun* run : active_) {
    const int32_t n = RoundSize(*run);
    run->candidates.clear();
    run->candidates.reserve(static_cast<size_t>(n));
    ++run->result.stats.rounds;
    run->candidates_sampled += n;
    // Attempt j of segment s: the j-th attempt whatever round it falls in (best-of-N's N
    // responses are the attempts of one segment; plain takes one attempt per segment).
    const int32_t first_attempt = run->search ? run->search->attempts() : 0;
    for (int32_t slot = 0; slot < n; ++slot) {
      const uint64_t key =
          AttemptKey(params_.seed, run->key, static_cast<uint64_t>(run->segment_index()),
                     static_cast<uint64_t>(first_attempt + slot));
      Candidate& candidate = run->candidates.emplace_back(
          pool_.Fork(run->trunk), key, Sampler(params_.sampling, key), run->n_past, Cap(*run));
      const llama_token token =
          candidate.sampler.SampleFromLogits(run->logits.data(), n_vocab, &scratch_);
      ++run->result.stats.policy_tokens_sampled;
      PushToken(tokenizer_, params_.stop, run->response_text, token, &candidate);
    }
  }
  seconds_policy_ += SecondsSince(start);
}

// Steps 1..K-1: one llama_decode per step for every live candidate of every prompt (more only
// when they outnumber n_batch). A candidate's last token is only decoded if it is accepted
// (next round's step 0).
void Generation::DecodeCandidates() {
  std::vector<std::pair<PromptRun*, Candidate*>> waiting;
  auto flush = [&] {
    costs_.RecordStep(batch_.size(), Decode());
    const auto start = Clock::now();
    std::vector<SamplingJob> jobs;
    jobs.reserve(waiting.size());
    for (auto& [run, candidate] : waiting) {
      jobs.push_back({&candidate->sampler, context_.Logits(candidate->batch_index)});
    }
    SampleInParallel(jobs, tokenizer_.n_vocab(), context_.n_threads());
    for (size_t i = 0; i < waiting.size(); ++i) {
      auto& [run, candidate] = waiting[i];
      ++run->result.stats.policy_tokens_sampled;
      PushToken(tokenizer_, params_.stop, run->response_text, jobs[i].token, candidate);
    }
    seconds_policy_ += SecondsSince(start);
    waiting.clear();
    batch_.Clear();
  };
  for (;;) {
    batch_.Clear();
    bool any = false;
    for (PromptRun* run : active_) {
      for (Candidate& candidate : run->candidates) {
        if (candidate.done) continue;
        if (batch_.size() == batch_.capacity()) flush();
        candidate.batch_index =
            batch_.Add(candidate.tokens.back(), candidate.next_pos, candidate.seq, true);
        ++candidate.next_pos;
        ++run->result.stats.policy_tokens_decoded;
        waiting.emplace_back(run, &candidate);
        any = true;
      }
    }
    if (!any) return;
    if (!batch_.empty()) flush();
  }
}

void Generation::CheckScores(const std::vector<RewardRow>& rows,
                             const std::vector<double>& scores) const {
  if (scores.size() != rows.size()) {
    throw RewardError("reward returned " + std::to_string(scores.size()) + " values for " +
                      std::to_string(rows.size()) + " rows");
  }
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) {
      throw RewardError("reward returned a non-finite value (" + std::to_string(scores[i]) +
                        ") for row " + std::to_string(i) + " (prompt " +
                        std::to_string(rows[i].prompt) + ")");
    }
  }
}

void Generation::ScoreRound() {
  std::vector<RewardRow> rows;
  std::vector<size_t> first_row(active_.size());
  const bool scored = params_.mode != Mode::kPlain;
  if (scored) {
    for (size_t a = 0; a < active_.size(); ++a) {
      PromptRun& run = *active_[a];
      first_row[a] = rows.size();
      // r(x, empty) for the threshold ramp rides along with the first round's call.
      if (params_.mode == Mode::kStars && run.calibration->needs_empty_reward()) {
        rows.push_back(MakeRow(run, nullptr));
      }
      for (const Candidate& candidate : run.candidates) rows.push_back(MakeRow(run, &candidate));
      ++run.result.stats.reward_calls;
      run.result.stats.reward_rows += static_cast<int64_t>(rows.size() - first_row[a]);
    }
  }
  std::vector<double> scores;
  if (!rows.empty()) {
    const auto start = Clock::now();
    reward_->Score(rows, &scores);
    const double seconds = SecondsSince(start);
    seconds_reward_ += seconds;
    costs_.RecordReward(static_cast<int64_t>(rows.size()), seconds);
    CheckScores(rows, scores);
  }
  std::vector<PromptRun*> still_active;
  std::vector<PromptRun*> plain_finished;
  for (size_t a = 0; a < active_.size(); ++a) {
    PromptRun& run = *active_[a];
    const size_t end = a + 1 < active_.size() ? first_row[a + 1] : rows.size();
    if (scored) {
      Decide(run, scores.data() + first_row[a], end - first_row[a]);
    } else {
      Segment segment;
      segment.attempts = 1;
      AcceptCandidate(run, run.candidates.front(), std::move(segment));
    }
    if (!run.finished) {
      still_active.push_back(&run);
    } else if (!scored && reward_ != nullptr) {
      plain_finished.push_back(&run);
    }
  }
  active_ = std::move(still_active);
  if (!plain_finished.empty()) ScoreFinalResponses(plain_finished);
}

// Plain mode reports the reward of each finished response, one call for all of them.
void Generation::ScoreFinalResponses(std::vector<PromptRun*>& runs) {
  std::vector<RewardRow> rows;
  for (PromptRun* run : runs) {
    rows.push_back(MakeRow(*run, nullptr));
    ++run->result.stats.reward_calls;
    ++run->result.stats.reward_rows;
  }
  std::vector<double> scores;
  const auto start = Clock::now();
  reward_->Score(rows, &scores);
  seconds_reward_ += SecondsSince(start);
  CheckScores(rows, scores);
  for (size_t i = 0; i < runs.size(); ++i) {
    runs[i]->result.reward = scores[i];
    CloseReward(*runs[i]);
  }
}

void Generation::Decide(PromptRun& run, const double* rewards, size_t n_rewards) {
  std::vector<double> round_rewards(rewards, rewards + n_rewards);
  for (size_t j = 0; j < run.candidates.size(); ++j) {
    run.candidates[j].reward = round_rewards[round_rewards.size() - run.candidates.size() + j];
  }
  if (params_.mode == Mode::kBestOfN) {
    size_t best = 0;
    for (size_t j = 1; j < run.candidates.size(); ++j) {
      if (run.candidates[j].reward > run.candidates[best].reward) best = j;
    }
    Segment segment;
    segment.attempts = static_cast<int32_t>(run.candidates.size());
    segment.rewards = round_rewards;
    segment.reward = run.candidates[best].reward;
    run.result.reward = run.candidates[best].reward;
    AcceptCandidate(run, run.candidates[best], std::move(segment));
    return;
  }
  if (run.calibration->needs_empty_reward()) {
    run.calibration->SetEmptyReward(round_rewards.front());
    round_rewards.erase(round_rewards.begin());
  }
  std::vector<int32_t> lengths;
  std::vector<double> draws;
  lengths.reserve(run.candidates.size());
  draws.reserve(run.candidates.size());
  for (const Candidate& candidate : run.candidates) {
    lengths.push_back(run.response_length() + static_cast<int32_t>(candidate.tokens.size()));
    draws.push_back(AcceptanceDraw(candidate.attempt_key));
  }
  const SegmentSearch::Decision decision =
      run.search->Consider(round_rewards, lengths, draws, *run.calibration);
  // Candidates after the chosen one were sampled and scored for nothing: waste, and nothing
  // else (they must not move the width estimate, or outputs would depend on the width). A
  // warm-up's attempts could not be accepted: they say nothing of the acceptance rate.
  if (decision.outcome != SegmentSearch::Outcome::kWarmup) {
    run.attempts_considered += decision.considered;
  }
  if (decision.outcome == SegmentSearch::Outcome::kAccepted) ++run.segments_accepted;
  if (decision.outcome == SegmentSearch::Outcome::kContinue) {
    if (decision.new_best_slot >= 0) {
      // This round holds the best so far: keep its sequence for a later fallback.
      if (run.best) pool_.Release(run.best->seq);
      run.best.emplace(std::move(run.candidates[decision.new_best_slot]));
      run.candidates.erase(run.candidates.begin() + decision.new_best_slot);
    }
    ReleaseRound(run);
    return;
  }
  Segment segment;
  segment.attempts = run.search->attempts();
  segment.rewards = run.search->rewards();
  segment.threshold = decision.threshold;
  segment.reward = decision.reward;
  segment.fallback = decision.outcome == SegmentSearch::Outcome::kFallback;
  run.result.reward = decision.reward;
  Candidate& chosen = decision.chosen_slot >= 0 ? run.candidates[decision.chosen_slot] : *run.best;
  AcceptCandidate(run, chosen, std::move(segment));
  run.search.emplace(params_.max_attempts);
}

void Generation::ReleaseRound(PromptRun& run) {
  for (Candidate& candidate : run.candidates) {
    if (candidate.seq >= 0) pool_.Release(candidate.seq);
  }
  run.candidates.clear();
}

void Generation::AcceptCandidate(PromptRun& run, Candidate& chosen, Segment segment) {
  run.trunk = pool_.Adopt(run.trunk, chosen.seq);
  const int32_t n_tokens = static_cast<int32_t>(chosen.tokens.size());
  // The trunk now holds the candidate's decoded tokens; the rest waits for the next round.
  const int32_t n_decoded = std::min(chosen.n_decoded(), n_tokens);
  run.n_past = chosen.fork_pos + n_decoded;
  run.pending.assign(chosen.tokens.begin() + n_decoded, chosen.tokens.end());
  // A stop string that began in the accepted response ends it where the stop string starts.
  if (chosen.trunk_cut > 0) CutResponse(run, run.response_text.size() - chosen.trunk_cut);
  const size_t base = run.response_text.size();
  for (size_t offset : chosen.offsets) run.response_offsets.push_back(base + offset);
  run.response_tokens.insert(run.response_tokens.end(), chosen.tokens.begin(), chosen.tokens.end());
  run.response_text += chosen.text;
  run.result.stats.tokens_accepted += n_tokens;
  if (reward_ != nullptr) {
    reward_->Commit(run.index, chosen.tokens.data(), n_tokens, chosen.text);
  }

  // Hold back a split UTF-8 character or the start of a stop string until the response grows
  // or ends, so that no segment shows text that a later one takes back.
  const bool ends = chosen.ends_response || run.response_length() >= params_.max_tokens;
  const size_t shown = ends
                           ? run.response_text.size()
                           : std::max(run.n_shown, ShowablePrefix(run.response_text, params_.stop));
  segment.text = run.response_text.substr(run.n_shown, shown - run.n_shown);
  run.n_shown = shown;
  segment.tokens.assign(chosen.tokens.begin(), chosen.tokens.end());
  const bool chosen_ends = chosen.ends_response;

  chosen.seq = -1;  // now the trunk: not released with the other candidates
  ReleaseRound(run);
  if (run.best) {
    if (run.best->seq >= 0) pool_.Release(run.best->seq);
    run.best.reset();
  }

  run.result.segments.push_back(segment);
  if (hooks_.on_segment) hooks_.on_segment(run.index, run.result.segments.back());
  if (chosen_ends) {
    Finish(run, FinishReason::kStop);
  } else if (run.response_length() >= params_.max_tokens) {
    Finish(run, FinishReason::kLength);
  }
}

// Cuts the accepted response to `size` bytes, with the tokens that start before it. Only held
// back text is ever cut (ShowablePrefix), so what segments showed stays shown.
void Generation::CutResponse(PromptRun& run, size_t size) {
  size = std::max(size, run.n_shown);
  int64_t dropped = 0;
  while (!run.response_offsets.empty() && run.response_offsets.back() >= size) {
    run.response_offsets.pop_back();
    run.response_tokens.pop_back();
    ++dropped;
  }
  run.response_text.resize(size);
  run.result.stats.tokens_accepted -= dropped;
  // The dropped tokens came last: take them off the segments that accepted them.
  for (auto it = run.result.segments.rbegin(); dropped > 0 && it != run.result.segments.rend();
       ++it) {
    const int64_t n = std::min<int64_t>(dropped, static_cast<int64_t>(it->tokens.size()));
    it->tokens.resize(it->tokens.size() - static_cast<size_t>(n));
    dropped -= n;
  }
}

void Generation::Finish(PromptRun& run, FinishReason reason) {
  run.finished = true;
  pool_.Release(run.trunk);
  run.trunk = -1;
  seqs_reserved_ -= run.reserved_seqs;
  cells_reserved_ -= run.reserved_cells;
  Stats& stats = run.result.stats;
  stats.tokens_wasted = stats.policy_tokens_sampled - stats.tokens_accepted;
  stats.mean_round_width =
      stats.rounds > 0 ? static_cast<double>(run.candidates_sampled) / stats.rounds : 0.0;
  run.result.finish_reason = reason;
  run.result.text = run.response_text;
  run.result.tokens.assign(run.response_tokens.begin(), run.response_tokens.end());
  // Plain mode scores the finished response first (ScoreFinalResponses).
  if (reward_ != nullptr && params_.mode != Mode::kPlain) CloseReward(run);
}

void Generation::CloseReward(PromptRun& run) {
  run.result.stats.reward_tokens_decoded = reward_->TokensDecoded(run.index);
  run.result.stats.reward_rows_truncated = reward_->RowsTruncated(run.index);
  reward_->Finish(run.index);
}

}  // namespace stars
