#include "engine/sampling_pool.h"

#include <algorithm>

namespace stars {
namespace {

// Below this many draws per thread, waking a worker costs more than it saves.
constexpr size_t kJobsPerThread = 4;

}  // namespace

SamplingPool::SamplingPool(int32_t n_threads) : n_threads_(std::max(1, n_threads)) {}

SamplingPool::~SamplingPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void SamplingPool::StartWorkers() {
  for (int32_t i = 1; i < n_threads_; ++i) {
    workers_.emplace_back([this] {
      std::vector<llama_token_data> scratch;
      uint64_t seen = 0;
      for (;;) {
        {
          std::unique_lock<std::mutex> lock(mutex_);
          start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
          if (stopping_) return;
          seen = generation_;
        }
        Work(&scratch);
        std::lock_guard<std::mutex> lock(mutex_);
        if (--busy_ == 0) done_.notify_one();
      }
    });
  }
}

void SamplingPool::Work(std::vector<llama_token_data>* scratch) {
  std::vector<SamplingJob>& jobs = *jobs_;
  for (size_t i = next_.fetch_add(1); i < jobs.size(); i = next_.fetch_add(1)) {
    try {
      SamplingJob& job = jobs[i];
      if (job.on_backend) continue;  // llama.cpp drew it in the graph
      job.token = job.sampler->SampleFromLogits(job.logits, n_vocab_, scratch);
      // From the raw row: the chain worked on a copy.
      if (job.n_top >= 0) job.logprobs = TokenLogprobs(job.logits, n_vocab_, job.token, job.n_top);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void SamplingPool::Sample(std::vector<SamplingJob>& jobs, int32_t n_vocab) {
  jobs_ = &jobs;
  n_vocab_ = n_vocab;
  next_.store(0);
  error_ = nullptr;
  const bool together = n_threads_ > 1 && jobs.size() >= 2 * kJobsPerThread;
  if (together) {
    if (workers_.empty()) StartWorkers();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++generation_;
      busy_ = static_cast<int32_t>(workers_.size());
    }
    start_.notify_all();
  }
  Work(&scratch_);
  if (together) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return busy_ == 0; });
  }
  jobs_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace stars
