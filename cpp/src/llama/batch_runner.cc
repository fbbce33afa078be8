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
  std::vector<size_t> order;
  order.reserve(jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j) {
    const DecodeJob& job = jobs[j];
    if (job.n_tokens <= 0) continue;
    if (whole_jobs_ && job.n_tokens > n_batch_) {
      throw Error("an input of " + std::to_string(job.n_tokens) +
                  " tokens is longer than the batch (n_batch=" + std::to_string(n_batch_) + ")");
    }
    total += job.n_tokens;
    order.push_back(j);
  }
  if (total == 0) return;
  const bool isolated = context_.layout() == KvLayout::kIsolated;
  if (isolated) {
    // Jobs of one length side by side, ids ascending.
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (jobs[a].n_tokens != jobs[b].n_tokens) return jobs[a].n_tokens < jobs[b].n_tokens;
      return jobs[a].seq < jobs[b].seq;
    });
  }
  if (total > batch_.capacity()) batch_.Reserve(static_cast<int32_t>(total));
  batch_.Clear();
  job_of_token_.clear();
  reported_.clear();
  // With embeddings on llama.cpp outputs every token anyway, and warns on each batch that does
  // not say so; only each job's last token is reported either way.
  const bool all_outputs = context_.embeddings();
  // Where each job starts in the batch, in layout order, and where the last one ends.
  std::vector<int32_t> starts;
  for (size_t j : order) {
    const DecodeJob& job = jobs[j];
    starts.push_back(batch_.size());
    for (int32_t i = 0; i < job.n_tokens; ++i) {
      const bool report = job.output && i == job.n_tokens - 1;
      batch_.Add(job.tokens[i], job.pos + i, job.seq, report || all_outputs);
      job_of_token_.push_back(j);
      reported_.push_back(report);
    }
  }
  starts.push_back(batch_.size());

  const int32_t n_ubatch = context_.n_ubatch();
  size_t next = 0;  // the first job of the next view, in layout order
  for (int32_t first = 0; first < batch_.size();) {
    int32_t n = std::min(n_batch_, batch_.size() - first);
    if (isolated && starts[next + 1] - first > n_ubatch) {
      // A job longer than a micro-batch, alone: views of whole micro-batches from its start,
      // cut where llama.cpp would cut it in one decode.
      n = std::min(starts[next + 1] - first, std::max(n_ubatch, n_batch_ / n_ubatch * n_ubatch));
      if (first + n == starts[next + 1]) ++next;
    } else if (isolated) {
      // Jobs of the first one's length, as many as one micro-batch holds whole (at least one).
      const int32_t length = jobs[order[next]].n_tokens;
      size_t end = next + 1;
      while (end < order.size() && jobs[order[end]].n_tokens == length &&
             static_cast<int64_t>(end - next + 1) * length <= n_ubatch) {
        ++end;
      }
      n = starts[end] - first;
      next = end;
    } else if (whole_jobs_) {
      // The view ends at the last job boundary it reaches.
      size_t end = next;
      while (end + 1 < starts.size() && starts[end + 1] <= first + n) ++end;
      n = starts[end] - first;
      next = end;
    }
    const auto start = std::chrono::steady_clock::now();
    context_.Decode(batch_.View(first, n));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const llama_batch& all = batch_.get();
    outputs_.clear();
    int32_t micro_batches = (n + n_ubatch - 1) / n_ubatch;
    if (isolated) {
      micro_batches = 1;
      for (int32_t i = first + 1; i < first + n; ++i) {
        const llama_seq_id seq = all.seq_id[i][0], before = all.seq_id[i - 1][0];
        micro_batches += seq != before && seq != before + 1 ? 1 : 0;
      }
    }
    int32_t n_jobs = 0;
    for (int32_t i = first; i < first + n; ++i) {
      n_jobs += i == first ||
                job_of_token_[static_cast<size_t>(i)] != job_of_token_[static_cast<size_t>(i - 1)];
      if (pool_ != nullptr) pool_->Extend(all.seq_id[i][0], all.pos[i] + 1);
      if (reported_[static_cast<size_t>(i)])
        outputs_.push_back({job_of_token_[static_cast<size_t>(i)], i - first});
    }
    if (!outputs_.empty()) on_view(DecodedView{outputs_, n, seconds, micro_batches, n_jobs});
    first += n;
  }
}

}  // namespace stars
