#include "engine/parallel_sampling.h"

#include <algorithm>
#include <exception>
#include <thread>

namespace stars {
namespace {

// Below this many draws per thread, starting a thread costs more than it saves.
constexpr size_t kJobsPerThread = 4;

void SampleRange(std::vector<SamplingJob>& jobs, size_t first, size_t last, int32_t n_vocab) {
  std::vector<llama_token_data> scratch;
  for (size_t i = first; i < last; ++i) {
    jobs[i].token = jobs[i].sampler->SampleFromLogits(jobs[i].logits, n_vocab, &scratch);
  }
}

}  // namespace

void SampleInParallel(std::vector<SamplingJob>& jobs, int32_t n_vocab, int32_t n_threads) {
  const size_t n_workers = std::clamp<size_t>(jobs.size() / kJobsPerThread, 1,
                                              static_cast<size_t>(std::max(1, n_threads)));
  if (n_workers == 1) {
    SampleRange(jobs, 0, jobs.size(), n_vocab);
    return;
  }
  std::vector<std::thread> workers;
  std::vector<std::exception_ptr> errors(n_workers);
  const size_t per_worker = (jobs.size() + n_workers - 1) / n_workers;
  for (size_t w = 0; w < n_workers; ++w) {
    const size_t first = w * per_worker;
    const size_t last = std::min(jobs.size(), first + per_worker);
    if (first >= last) break;
    workers.emplace_back([&, w, first, last] {
      try {
        SampleRange(jobs, first, last, n_vocab);
      } catch (...) {
        errors[w] = std::current_exception();
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  for (const std::exception_ptr& error : errors) {
    if (error) std::rethrow_exception(error);
  }
}

}  // namespace stars
