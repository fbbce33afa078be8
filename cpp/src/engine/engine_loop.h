// The engine loop: one thread that owns the policy's decoder and runs every request. Between
// rounds it admits queued requests as sequence ids and KV cells allow, then runs one round of
// lockstep candidate decoding, scoring and acceptance for all of them. Requests leave as they
// finish, fail or are cancelled, each with its own outcome; the loop and the others go on.
//
// Its jobs live in their own files: the queue (request_queue.h), the capacity math
// (algorithm/admission.h), the round's decoding and draws (round_decoder.h), scoring
// (round_scoring.h), what each mode decides (mode_policy.h) and the counters (loop_counters.h).
// This file joins them: admission, the round's order, and accepting a segment into the response.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "algorithm/round_cost.h"
#include "engine/loop_counters.h"
#include "engine/prompt_run.h"
#include "engine/request_queue.h"
#include "engine/round_decoder.h"
#include "engine/round_scoring.h"
#include "llama/policy_decoder.h"
#include "llama/vocabulary.h"
#include "stars/engine.h"

namespace stars {

class EngineLoop {
 public:
  // `make_decoder` makes the policy's decoder when the first requests come (and again, larger,
  // when the queue needs more). `backend`: candidates sample in llama.cpp's graph where their
  // chain allows (EngineOptions::sampling, resolved). The loop shares the vocabulary and the
  // reward (may be null) with its Engine: an abandoned loop (Abandon) outlives the Engine.
  // `hidden_state_size` > 0: the reward reads the policy's last-layer hidden states
  // (RewardRow::features, a probe on this policy) of that many floats.
  EngineLoop(PolicyDecoderFactory make_decoder, std::shared_ptr<const Vocabulary> vocabulary,
             std::shared_ptr<Reward> reward, const EngineOptions& options, bool backend,
             int32_t hidden_state_size = 0);
  ~EngineLoop();  // Close()s
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // Queues validated, tokenized requests (MakePromptRun) and wakes the loop; returns their ids.
  // With `bounded`, throws QueueFullError when they do not fit within max_queue. Throws
  // EngineClosedError after Close().
  std::vector<RequestId> Submit(std::vector<std::unique_ptr<PromptRun>> runs, bool bounded);
  bool Cancel(RequestId id) { return queue_.Cancel(id); }
  // Stops and joins the loop thread; idempotent. Must not be called on the loop thread.
  void Close();
  // For an Engine destroyed on its own loop thread (its last reference dropped inside a reward
  // or callback, e.g. by Python's garbage collector): the loop cannot be joined from there, so
  // it is closed, its thread detached, and the thread frees it once its loop ends.
  static void Abandon(std::unique_ptr<EngineLoop> loop);
  EngineMetrics Metrics() const { return queue_.Metrics(); }
  bool OnLoopThread() const { return std::this_thread::get_id() == thread_id_; }

 private:
  void Main();
  void Admit();
  // Moves queued requests that fit (only plain ones, at the queue's head, with `plain_only`)
  // into active_ and starts them; returns them.
  std::vector<PromptRun*> AdmitQueued(bool plain_only);
  void Start(PromptRun& run);
  void Round();
  // Step 0: the trunks' pending tokens (a new prompt, or the last token of the segment accepted
  // last round), so that the rounds' first tokens come from their outputs.
  void DecodePending();
  // The trunk's pending tokens are decoded: its round starts from the output at `batch_index`
  // (its in-graph draw in plain mode on the backend, else its logits row).
  void StartFromTrunk(PromptRun& run, int32_t batch_index, int32_t cap_limit);
  // Starts the rounds of the runs whose trunk had nothing to decode (a STARS segment that
  // accepted nothing last round), from their kept logits.
  void RestartRounds();
  // Forks the run's candidates for this round (at most `cap_limit` tokens each) and draws their
  // first tokens from `logits`, the trunk's row (null: the trunk drew it in the graph).
  void StartRound(PromptRun& run, int32_t cap_limit, const float* logits);
  // Steps 1..K-1, until every candidate is done.
  void DecodeCandidates();
  void ScoreRound();
  void Decide(PromptRun& run, const std::vector<double>& rewards);
  void AcceptCandidate(PromptRun& run, Candidate& chosen, Segment segment);
  // Cuts the accepted response to `size` bytes (a stop string that began in it).
  void CutResponse(PromptRun& run, size_t size);
  void Finish(PromptRun& run, FinishReason reason);
  void ReleaseSequences(PromptRun& run);
  void ReleaseRound(PromptRun& run);
  // Takes the finished and failed runs out of active_ and hands each its outcome.
  void Retire();
  void Publish();
  void ApplyCancels();
  void FailAll(std::exception_ptr error, bool queued_too);
  int32_t LiveRuns() const;
  // What a fork, keep or adoption copies: a whole KV stream in the isolated layout (llama.cpp
  // copies it at the next decode), nothing in the shared one.
  void CountStreamCopy() {
    counters_.StreamCopies(options_.kv_layout == KvLayout::kIsolated ? 1 : 0);
  }
  PolicyDecoder& decoder() { return round_decoder_.decoder(); }

  std::shared_ptr<const Vocabulary> vocabulary_holder_;
  const Vocabulary& vocabulary_;
  std::shared_ptr<Reward> reward_holder_;
  Reward* reward_;
  EngineOptions options_;
  const bool backend_;
  const bool hidden_states_;  // a probe reads the policy's hidden states
  RequestQueue queue_;

  // Loop thread only.
  // Decode and reward costs measured across requests; priced by priors alone in the shared
  // layout, where a width moves the numerics and so must not follow the machine's load.
  RoundCostModel costs_;
  LoopCounters counters_;
  RoundDecoder round_decoder_;
  RoundScorer scorer_;
  std::vector<SamplingJob> first_tokens_;  // StartRound's draws
  std::vector<std::unique_ptr<PromptRun>> active_;
  std::vector<int32_t> free_slots_;
  int32_t next_slot_ = 0;
  int32_t seqs_reserved_ = 0;
  int64_t cells_reserved_ = 0;

  // The thread, started by the first request; thread_mutex_ orders its start with Close and
  // Abandon.
  std::mutex thread_mutex_;
  std::thread thread_;
  bool abandoned_ = false;  // Abandon: the loop thread deletes this when its loop ends
  std::atomic<std::thread::id> thread_id_;
};

}  // namespace stars
