#include "engine/request_queue.h"

#include <string>
#include <utility>

#include "stars/errors.h"

namespace stars {

std::vector<RequestId> RequestQueue::Push(std::vector<std::unique_ptr<PromptRun>> runs,
                                          bool bounded) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) throw EngineClosedError("the engine is closed");
  if (bounded && max_queue_ > 0 && queue_.size() + runs.size() > static_cast<size_t>(max_queue_)) {
    throw QueueFullError("the queue is full (max_queue=" + std::to_string(max_queue_) +
                         " requests wait already): try again later");
  }
  std::vector<RequestId> ids;
  for (std::unique_ptr<PromptRun>& run : runs) {
    run->id = next_id_++;
    ids.push_back(run->id);
    live_.insert(run->id);
    queue_.push_back(std::move(run));
  }
  metrics_.requests_submitted += static_cast<int64_t>(runs.size());
  wake_.notify_one();
  return ids;
}

bool RequestQueue::Cancel(RequestId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (live_.count(id) == 0) return false;
  cancels_.insert(id);
  wake_.notify_one();
  return true;
}

bool RequestQueue::Close() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return false;
  closed_ = true;
  wake_.notify_one();
  return true;
}

bool RequestQueue::Wait(bool active) {
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait(lock, [&] { return closed_ || !queue_.empty() || active || !cancels_.empty(); });
  return !closed_;
}

std::unordered_set<RequestId> RequestQueue::TakeCancels(
    std::vector<std::unique_ptr<PromptRun>>* dropped) {
  std::unordered_set<RequestId> cancels;
  std::lock_guard<std::mutex> lock(mutex_);
  if (cancels_.empty()) return cancels;
  cancels.swap(cancels_);
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (cancels.count((*it)->id) != 0) {
      dropped->push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return cancels;
}

std::vector<std::unique_ptr<PromptRun>> RequestQueue::TakeWhile(
    const std::function<bool(const PromptRun&)>& fits) {
  std::vector<std::unique_ptr<PromptRun>> taken;
  std::lock_guard<std::mutex> lock(mutex_);
  while (!queue_.empty() && fits(*queue_.front())) {
    taken.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return taken;
}

std::vector<std::unique_ptr<PromptRun>> RequestQueue::TakeAll() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::unique_ptr<PromptRun>> taken;
  for (auto& run : queue_) taken.push_back(std::move(run));
  queue_.clear();
  return taken;
}

void RequestQueue::ForEachWaiting(const std::function<void(const PromptRun&)>& visit) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& run : queue_) visit(*run);
}

bool RequestQueue::empty() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.empty();
}

void RequestQueue::Retire(const std::vector<std::unique_ptr<PromptRun>>& done) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& run : done) {
    live_.erase(run->id);
    if (run->error) {
      ++metrics_.requests_failed;
    } else {
      ++metrics_.requests_finished;
      if (run->cancelled) ++metrics_.requests_cancelled;
      metrics_.tokens_accepted += run->result.stats.tokens_accepted;
    }
  }
}

void RequestQueue::Publish(const std::function<void(EngineMetrics*)>& update) {
  std::lock_guard<std::mutex> lock(mutex_);
  update(&metrics_);
}

EngineMetrics RequestQueue::Metrics() const {
  std::lock_guard<std::mutex> lock(mutex_);
  EngineMetrics metrics = metrics_;
  metrics.requests_queued = static_cast<int64_t>(queue_.size());
  return metrics;
}

}  // namespace stars
