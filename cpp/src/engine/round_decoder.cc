#include "engine/round_decoder.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "algorithm/token_logprobs.h"

namespace stars {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void RoundDecoder::Make(const ContextOptions& options) {
  decoder_.reset();
  decoder_ = make_decoder_(options);
  // Kept when the decoder is made again: its threads are started once.
  if (!sampling_) sampling_ = std::make_unique<SamplingPool>(decoder_->n_threads());
}

void RoundDecoder::Draw(std::vector<SamplingJob>& jobs) {
  for (SamplingJob& job : jobs) {
    if (job.on_backend) {
      if (job.batch_index >= 0) job.token = decoder_->SampledToken(job.batch_index);
    } else if (job.logits == nullptr) {
      job.logits = decoder_->Logits(job.batch_index);
    }
  }
  sampling_->Sample(jobs, vocabulary_.n_vocab());
}

double RoundDecoder::DecodeTrunks(const std::vector<PromptRun*>& runs,
                                  const std::function<void(PromptRun&, int32_t)>& on_trunk) {
  jobs_.clear();
  for (PromptRun* run : runs) {
    jobs_.push_back({run->trunk, run->n_past, run->pending.data(),
                     static_cast<int32_t>(run->pending.size()), true});
  }
  double seconds = 0.0;
  if (jobs_.empty()) return seconds;
  // A prefill would make every prompt token an output row.
  if (n_embd_ > 0) decoder_->SetHiddenStates(false);
  decoder_->Decode(jobs_, [&](const DecodedView& view) {
    seconds += view.seconds;
    counters_->Decode(view.n_tokens, view.seconds, view.micro_batches);
    const auto start = std::chrono::steady_clock::now();
    for (const DecodedOutput& out : view.outputs) on_trunk(*runs[out.job], out.batch_index);
    seconds += SecondsSince(start);
  });
  return seconds;
}

void RoundDecoder::PadGaps(const std::vector<PromptRun*>& runs) {
  // The done candidates that may pad: within their own cap and stream (the request reserved
  // that many cells).
  paddable_.assign(static_cast<size_t>(decoder_->n_seq()), nullptr);
  for (PromptRun* run : runs) {
    for (Candidate& candidate : run->candidates) {
      const int32_t used = candidate.n_decoded() + candidate.n_padding;
      if (candidate.done && !candidate.tokens.empty() && used + 1 <= candidate.cap &&
          candidate.next_pos + candidate.n_padding + 1 <= decoder_->n_cells_per_seq()) {
        paddable_[static_cast<size_t>(candidate.seq)] = &candidate;
      }
    }
  }
  live_ids_.clear();
  for (const DecodeJob& job : jobs_) live_ids_.push_back(job.seq);
  std::sort(live_ids_.begin(), live_ids_.end());
  // A gap is padded only when every id in it can pad: otherwise it splits the step anyway.
  for (size_t k = 1; k < live_ids_.size(); ++k) {
    const llama_seq_id a = live_ids_[k - 1], b = live_ids_[k];
    bool closes = b > a + 1;
    for (llama_seq_id id = a + 1; closes && id < b; ++id) closes = paddable_[id] != nullptr;
    for (llama_seq_id id = a + 1; closes && id < b; ++id) {
      Candidate* candidate = paddable_[id];
      jobs_.push_back({candidate->seq, candidate->next_pos + candidate->n_padding,
                       &candidate->tokens.back(), 1, false});
      owners_.emplace_back(nullptr, nullptr);
      ++candidate->n_padding;
    }
  }
}

// A candidate's last token is only decoded if it is accepted (the next round's step 0).
double RoundDecoder::Step(const std::vector<PromptRun*>& runs,
                          const std::vector<PromptRun*>& joining,
                          const std::function<void(PromptRun&, int32_t)>& on_joined) {
  jobs_.clear();
  owners_.clear();
  for (PromptRun* run : runs) {
    for (Candidate& candidate : run->candidates) {
      if (candidate.done) continue;
      jobs_.push_back({candidate.seq, candidate.next_pos, &candidate.tokens.back(), 1, true});
      owners_.emplace_back(run, &candidate);
    }
  }
  if (jobs_.empty()) return 0.0;
  if (decoder_->isolated()) PadGaps(runs);
  for (PromptRun* run : joining) {
    jobs_.push_back({run->trunk, run->n_past, run->pending.data(),
                     static_cast<int32_t>(run->pending.size()), true});
    owners_.emplace_back(run, nullptr);
  }
  double seconds = 0.0;
  // Hidden states for a probe: only in steps of one token per sequence (no joining prompt), and
  // only when some request scores candidates.
  bool hidden = n_embd_ > 0 && joining.empty() &&
                std::any_of(runs.begin(), runs.end(),
                            [](const PromptRun* run) { return run->policy->ScoresCandidates(); });
  if (n_embd_ > 0 && !decoder_->SetHiddenStates(hidden)) hidden = n_embd_ = 0;
  decoder_->Decode(jobs_, [&](const DecodedView& view) {
    // Only views of one token per sequence price a step: a prompt's prefill would not.
    if (view.n_tokens == view.n_jobs) {
      costs_->RecordStep(view.n_tokens, view.seconds);
    }
    seconds += view.seconds;
    counters_->Decode(view.n_tokens, view.seconds, view.micro_batches);
    const auto start = std::chrono::steady_clock::now();
    draws_.clear();
    for (const DecodedOutput& out : view.outputs) {
      auto& [run, candidate] = owners_[out.job];
      if (candidate == nullptr) {
        on_joined(*run, out.batch_index);
        continue;
      }
      const std::optional<double> entropy_end = run->policy->EntropyEnd();
      if (entropy_end) {
        // The segment ends before a token the policy is unsure of: that token is the next
        // segment's first, drawn from this row.
        const float* row = decoder_->Logits(out.batch_index);
        if (Entropy(row, vocabulary_.n_vocab()) > *entropy_end) {
          candidate->next_logits.assign(row, row + vocabulary_.n_vocab());
          candidate->done = true;
          continue;
        }
      }
      SamplingJob job;
      job.sampler = &candidate->sampler;
      job.n_top = LogprobsWanted(run->params);
      job.batch_index = out.batch_index;
      job.on_backend = candidate->on_backend;
      draws_.push_back(job);
    }
    Draw(draws_);
    size_t i = 0;
    for (const DecodedOutput& out : view.outputs) {
      auto& [run, candidate] = owners_[out.job];
      if (candidate == nullptr || !candidate->next_logits.empty()) continue;
      const SamplingJob& job = draws_[i++];
      counters_->Draw(*run, job.on_backend);
      PushToken(vocabulary_, run->params.stop, run->response_text, job.token, job.drawn_logprobs(),
                candidate);
      // At its cap, this row is its second-to-last token's: the probe's feature. (Ended by an
      // end-of-generation token or a stop string, it decoded its last token too.)
      const int32_t decoded = candidate->n_decoded() + 1;
      if (hidden && candidate->done &&
          static_cast<int32_t>(candidate->tokens.size()) == decoded + 1) {
        const float* state = decoder_->HiddenState(out.batch_index);
        candidate->features.assign(state, state + n_embd_);
      }
    }
    seconds += SecondsSince(start);
  });
  for (auto& [run, candidate] : owners_) {
    if (candidate == nullptr) continue;
    ++candidate->next_pos;
    counters_->Decoded(*run, 1);
  }
  return seconds;
}

}  // namespace stars
