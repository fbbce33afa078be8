#include "llama/batch_runner.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "llama/context.h"
#include "llama/sequence_pool.h"
#include "stars/errors.h"

namespace stars {

BatchRunner::BatchRunner(Context& context, SequencePool* pool, bool whole_jobs)
    : context_(context),
      pool_(pool),
      whole_jobs_(whole_jobs),
      n_batch_(context.n_batch()),
      batch_(context.n_batch()) {}

void BatchRunner::Run(const std::vector<DecodeJob>& jobs,
                      const std::function<void(const DecodedView&)>& on_view) {
  int64_t total = 0;
  for (const DecodeJob& job : jobs) {
    if (job.n_tokens <= 0) continue;
    if (whole_jobs_ && job.n_tokens > n_batch_) {
      throw Error("an input of " + std::to_string(job.n_tokens) +
                  " tokens is longer than the batch (n_batch=" + std::to_string(n_batch_) + ")");
    }
    total += job.n_tokens;
  }
  if (total == 0) return;
  if (total > batch_.capacity()) batch_.Reserve(static_cast<int32_t>(total));
  batch_.Clear();
  job_of_token_.clear();
  reported_.clear();
  // With embeddings on llama.cpp outputs every token anyway, and warns on each batch that does
  // not say so; only each job's last token is reported either way.
  const bool all_outputs = context_.embeddings();
  // Lay out every job; with whole_jobs, pad nothing but remember where views must break.
  std::vector<int32_t> breaks;  // token indices a view may not cross (whole_jobs only)
  for (size_t j = 0; j < jobs.size(); ++j) {
    const DecodeJob& job = jobs[j];
    if (job.n_tokens <= 0) continue;
    breaks.push_back(batch_.size());
    for (int32_t i = 0; i < job.n_tokens; ++i) {
      const bool report = job.output && i == job.n_tokens - 1;
      batch_.Add(job.tokens[i], job.pos + i, job.seq, report || all_outputs);
      job_of_token_.push_back(j);
      reported_.push_back(report);
    }
  }
  breaks.push_back(batch_.size());

  size_t next_break = 0;
  for (int32_t first = 0; first < batch_.size();) {
    int32_t n = std::min(n_batch_, batch_.size() - first);
    if (whole_jobs_) {
      // The view ends at the last job boundary it reaches.
      while (next_break + 1 < breaks.size() && breaks[next_break + 1] <= first + n) ++next_break;
      n = breaks[next_break] - first;
    }
    const auto start = std::chrono::steady_clock::now();
    context_.Decode(batch_.View(first, n));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const llama_batch& all = batch_.get();
    outputs_.clear();
    for (int32_t i = first; i < first + n; ++i) {
      if (pool_ != nullptr) pool_->Extend(all.seq_id[i][0], all.pos[i] + 1);
      if (reported_[static_cast<size_t>(i)])
        outputs_.push_back({job_of_token_[static_cast<size_t>(i)], i - first});
    }
    if (!outputs_.empty()) on_view(DecodedView{outputs_, n, seconds});
    first += n;
  }
}

}  // namespace stars
