// Samples the next token of many candidates at once on the host, on worker threads that live as
// long as the engine. Each candidate owns its sampler chain, so the draws are independent: any
// split over threads gives the same tokens as one thread. On a fast backend the per-token
// sampling on the CPU (a pass over the whole vocabulary) would otherwise serialize behind every
// batched decode.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "algorithm/token_logprobs.h"
#include "llama.h"
#include "llama/sampler.h"

namespace stars {

// One token to draw: on the host by `sampler` from `logits` (null: the decoder's output row
// `batch_index`), or, `on_backend`, the token llama.cpp drew in the graph for that row (or
// `token` itself when it was read already). RoundDecoder::Draw fills `token`.
struct SamplingJob {
  Sampler* sampler = nullptr;
  const float* logits = nullptr;  // n_vocab values, valid until the next decode
  // >= 0: also the drawn token's log-probability and this many alternatives (logprobs).
  int32_t n_top = -1;
  int32_t batch_index = -1;
  bool on_backend = false;
  llama_token token = LLAMA_TOKEN_NULL;
  LogprobsOf logprobs;

  // The logprobs drawn with the token, or null (none asked for, or drawn in the graph).
  const LogprobsOf* drawn_logprobs() const {
    return n_top >= 0 && !on_backend ? &logprobs : nullptr;
  }
};

class SamplingPool {
 public:
  // Up to `n_threads` threads sample together: the caller and n_threads - 1 workers, which are
  // started the first time enough jobs come at once.
  explicit SamplingPool(int32_t n_threads);
  ~SamplingPool();  // joins the workers
  SamplingPool(const SamplingPool&) = delete;
  SamplingPool& operator=(const SamplingPool&) = delete;

  // Fills the token of every job drawn on the host (not `on_backend`). Rethrows the first error a
  // draw raised, after every draw is done.
  void Sample(std::vector<SamplingJob>& jobs, int32_t n_vocab);

  // Worker threads started so far (they are started once).
  int32_t threads_started() const { return static_cast<int32_t>(workers_.size()); }

 private:
  void Work(std::vector<llama_token_data>* scratch);
  void StartWorkers();

  const int32_t n_threads_;
  std::vector<std::thread> workers_;
  std::vector<llama_token_data> scratch_;  // the caller's

  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  uint64_t generation_ = 0;  // one per Sample call that uses the workers
  int32_t busy_ = 0;         // workers still on this generation's jobs
  bool stopping_ = false;

  // The current call's jobs, taken one at a time by whoever is free.
  std::vector<SamplingJob>* jobs_ = nullptr;
  int32_t n_vocab_ = 0;
  std::atomic<size_t> next_{0};
  std::exception_ptr error_;  // under mutex_
};

}  // namespace stars
