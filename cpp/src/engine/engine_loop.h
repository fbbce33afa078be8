// The engine loop: one thread that owns the policy's context and runs every request. Between
// rounds it admits queued requests as sequence ids and KV cells allow, then runs one round of
// lockstep candidate decoding, scoring and acceptance for all of them. Requests leave as they
// finish, fail or are cancelled, each with its own outcome; the loop and the others go on.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "algorithm/round_cost.h"
#include "engine/prompt_run.h"
#include "engine/sampling_pool.h"
#include "llama/batch_runner.h"
#include "llama/context.h"
#include "llama/sequence_pool.h"
#include "llama/tokenizer.h"
#include "stars/engine.h"

namespace stars {

class EngineLoop {
 public:
  // The loop shares the tokenizer and the reward with its Engine: an abandoned loop (Abandon)
  // outlives the Engine.
  EngineLoop(std::shared_ptr<Model> model, std::shared_ptr<const Tokenizer> tokenizer,
             std::shared_ptr<Reward> reward, const EngineOptions& options);
  ~EngineLoop();  // Close()s
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // Queues validated, tokenized requests and wakes the loop; returns their ids. With `bounded`,
  // throws QueueFullError when they do not fit within max_queue. Throws EngineClosedError after
  // Close().
  std::vector<RequestId> Submit(std::vector<std::unique_ptr<PromptRun>> runs, bool bounded);
  bool Cancel(RequestId id);
  // Stops and joins the loop thread; idempotent. Must not be called on the loop thread.
  void Close();
  // For an Engine destroyed on its own loop thread (its last reference dropped inside a reward
  // or callback, e.g. by Python's garbage collector): the loop cannot be joined from there, so
  // it is closed, its thread detached, and the thread frees it once its loop ends.
  static void Abandon(std::unique_ptr<EngineLoop> loop);
  EngineMetrics Metrics() const;
  bool OnLoopThread() const { return std::this_thread::get_id() == thread_id_; }

 private:
  void Main();
  void Admit();
  // Moves queued requests that fit (only plain ones, at the queue's head, with `plain_only`)
  // into active_ and starts them; returns them.
  std::vector<PromptRun*> AdmitQueued(bool plain_only);
  void Start(PromptRun& run);
  // Samples the first token of each of the run's candidates for this round (at most
  // `cap_limit` tokens each) from `logits`, the trunk's row (null: the trunk drew it in the
  // graph, run.first_token).
  void StartRound(PromptRun& run, int32_t cap_limit, const float* logits);
  void Round();
  // The trunk's pending tokens are decoded: its round starts from the output at `batch_index`
  // (its in-graph draw in plain mode on the backend, else its logits row).
  void StartFromTrunk(PromptRun& run, int32_t batch_index, int32_t cap_limit);
  void DecodePending();
  // Starts the rounds of the runs whose trunk had nothing to decode (a STARS segment that
  // accepted nothing last round), from their kept logits.
  void RestartRounds();
  void DecodeCandidates();
  void ScoreRound();
  // Scores each run's rows, one call for all of them. When that call throws, each run is scored
  // alone so that only the runs whose rows raise fail. Returns an empty vector for those.
  std::vector<std::vector<double>> ScoreIsolated(const std::vector<PromptRun*>& runs,
                                                 const std::vector<std::vector<RewardRow>>& rows);
  void Decide(PromptRun& run, const std::vector<double>& rewards);
  void AcceptCandidate(PromptRun& run, Candidate& chosen, Segment segment);
  void Finish(PromptRun& run, FinishReason reason);
  void Fail(PromptRun& run, std::exception_ptr error);
  void ReleaseSequences(PromptRun& run);
  void ReleaseRound(PromptRun& run);
  // Takes the finished and failed runs out of active_ and hands each its outcome.
  void Retire();
  // Copies the loop's counters and what it holds into metrics_ (mutex_ held).
  void PublishLocked();
  void ApplyCancels();
  void FailAll(std::exception_ptr error, bool queued_too);
  void CheckScores(const std::vector<RewardRow>& rows, const std::vector<double>& scores) const;
  void AddPolicySeconds(const std::vector<PromptRun*>& runs, double seconds);
  // The counters of one event (a decode call, a round, a draw, a KV stream copy), the
  // request's Stats and the engine's metrics together.
  void CountDecode(const DecodedView& view);
  void CountRound(PromptRun& run, int32_t width);
  void CountDraw(PromptRun& run, bool on_backend);
  void CountStreamCopy();
  void CutResponse(PromptRun& run, size_t size);
  // What a fork, keep or adoption copies: a whole KV stream in the isolated layout (llama.cpp
  // copies it at the next decode), nothing in the shared one.
  int64_t StreamCopies() const { return options_.kv_layout == KvLayout::kIsolated ? 1 : 0; }

  std::shared_ptr<Model> model_;
  std::shared_ptr<const Tokenizer> tokenizer_holder_;
  const Tokenizer& tokenizer_;
  std::shared_ptr<Reward> reward_holder_;
  Reward* reward_;
  EngineOptions options_;
  // Candidates sample inside llama.cpp's graph (EngineOptions::sampling, resolved).
  const bool backend_;

  // Loop thread only.
  std::unique_ptr<Context> context_;  // created on the first request
  std::unique_ptr<SequencePool> pool_;
  std::unique_ptr<BatchRunner> runner_;
  // Decode and reward costs measured across requests; priced by priors alone in the shared
  // layout, where a width moves the numerics and so must not follow the machine's load.
  RoundCostModel costs_;
  std::unique_ptr<SamplingPool> sampling_;  // host draws, with the first context
  std::vector<SamplingJob> first_tokens_;   // StartRound's draws
  std::vector<std::unique_ptr<PromptRun>> active_;
  EngineMetrics counters_;  // the loop's running totals, published into metrics_ by Retire
  std::vector<int32_t> free_slots_;
  int32_t next_slot_ = 0;
  int32_t seqs_reserved_ = 0;
  int64_t cells_reserved_ = 0;

  // Shared with submitting threads, under mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<PromptRun>> queue_;
  std::unordered_set<RequestId> cancels_;
  std::unordered_set<RequestId> live_;  // queued or active
  RequestId next_id_ = 1;
  bool closing_ = false;
  bool closed_ = false;
  bool abandoned_ = false;  // Abandon: the loop thread deletes this when its loop ends
  EngineMetrics metrics_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_;
};

}  // namespace stars
