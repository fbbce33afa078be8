// The requests between the submitting threads and the loop thread, under one mutex: submit,
// cancel and close from any thread; the loop takes the cancels, admits from the head and
// retires what is done. It also holds the metrics the engine publishes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "engine/prompt_run.h"
#include "stars/engine.h"

namespace stars {

class RequestQueue {
 public:
  explicit RequestQueue(int32_t max_queue) : max_queue_(max_queue) {}

  // Queues `runs`, each given its id. With `bounded`, throws QueueFullError when they do not
  // fit within max_queue. Throws EngineClosedError after Close().
  std::vector<RequestId> Push(std::vector<std::unique_ptr<PromptRun>> runs, bool bounded);
  // Asks the loop to cancel `id`; false when it is not queued or running.
  bool Cancel(RequestId id);
  // Refuses new requests and wakes the loop to end. False when already closed.
  bool Close();

  // Loop thread: waits until a request or a cancel comes, the loop has `active` requests, or
  // the queue closes; false on close.
  bool Wait(bool active);
  // The ids cancelled since the last call. The cancelled requests that still wait are taken out
  // of the queue into `dropped`.
  std::unordered_set<RequestId> TakeCancels(std::vector<std::unique_ptr<PromptRun>>* dropped);
  // Takes requests from the head while `fits(request)`; the first that does not stops it.
  std::vector<std::unique_ptr<PromptRun>> TakeWhile(
      const std::function<bool(const PromptRun&)>& fits);
  std::vector<std::unique_ptr<PromptRun>> TakeAll();
  void ForEachWaiting(const std::function<void(const PromptRun&)>& visit) const;
  bool empty() const;
  // `done` left the loop: their ids are free, their outcomes counted.
  void Retire(const std::vector<std::unique_ptr<PromptRun>>& done);
  // Updates the published metrics under the lock.
  void Publish(const std::function<void(EngineMetrics*)>& update);

  EngineMetrics Metrics() const;

 private:
  const int32_t max_queue_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<PromptRun>> queue_;
  std::unordered_set<RequestId> cancels_;
  std::unordered_set<RequestId> live_;  // queued or active
  RequestId next_id_ = 1;
  bool closed_ = false;
  EngineMetrics metrics_;
};

}  // namespace stars
