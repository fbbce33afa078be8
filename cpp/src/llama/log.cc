#include "stars/log.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <utility>

#include "llama.h"

namespace stars {
namespace {

std::atomic<int> threshold{static_cast<int>(LogLevel::kWarning)};

// Never destroyed: a reader may still wait on it, and llama.cpp may still log, at exit.
struct Queue {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<LogLine> lines;
  size_t dropped = 0;
  bool wake = false;
};
Queue& queue = *new Queue;

// llama.cpp sends a line in pieces (GGML_LOG_LEVEL_CONT continues the previous one).
thread_local std::string partial;
thread_local LogLevel partial_level = LogLevel::kInfo;
thread_local std::string first_error;

LogLevel FromGgml(ggml_log_level level) {
  switch (level) {
    case GGML_LOG_LEVEL_DEBUG:
      return LogLevel::kDebug;
    case GGML_LOG_LEVEL_WARN:
      return LogLevel::kWarning;
    case GGML_LOG_LEVEL_ERROR:
      return LogLevel::kError;
    default:
      return LogLevel::kInfo;
  }
}

void Emit(LogLevel level, std::string line) {
  // The first error since the last take: llama.cpp logs the cause, then generic lines.
  if (level == LogLevel::kError && first_error.empty()) first_error = line;
  if (static_cast<int>(level) < threshold.load(std::memory_order_relaxed)) return;
  {
    std::lock_guard<std::mutex> lock(queue.mutex);
    if (queue.lines.size() >= kMaxQueuedLogLines) {
      queue.lines.pop_front();
      ++queue.dropped;
    }
    queue.lines.push_back(LogLine{level, std::move(line)});
  }
  queue.ready.notify_one();
}

// A C callback: nothing may throw out of it.
void Callback(ggml_log_level level, const char* text, void*) noexcept {
  try {
    if (level != GGML_LOG_LEVEL_CONT) {
      if (!partial.empty()) Emit(partial_level, std::move(partial));
      partial.clear();
      partial_level = FromGgml(level);
    }
    for (const char* p = text; p != nullptr && *p != '\0'; ++p) {
      if (*p == '\n') {
        Emit(partial_level, std::move(partial));
        partial.clear();
      } else {
        partial.push_back(*p);
      }
    }
  } catch (...) {
    partial.clear();  // out of memory: lose the line, never the process
  }
}

}  // namespace

void InstallLog(int level) {
  SetLogThreshold(level);
  static std::once_flag once;
  std::call_once(once, [] { llama_log_set(Callback, nullptr); });
}

void SetLogThreshold(int level) { threshold.store(level, std::memory_order_relaxed); }

std::vector<LogLine> TakeLogLines(std::chrono::milliseconds timeout, size_t* dropped) {
  std::unique_lock<std::mutex> lock(queue.mutex);
  queue.ready.wait_for(lock, timeout, [] { return !queue.lines.empty() || queue.wake; });
  queue.wake = false;
  std::vector<LogLine> lines(std::make_move_iterator(queue.lines.begin()),
                             std::make_move_iterator(queue.lines.end()));
  queue.lines.clear();
  if (dropped != nullptr) *dropped = queue.dropped;
  queue.dropped = 0;
  return lines;
}

void WakeLogReaders() {
  {
    std::lock_guard<std::mutex> lock(queue.mutex);
    queue.wake = true;
  }
  queue.ready.notify_all();
}

void LogWarning(std::string line) { Emit(LogLevel::kWarning, std::move(line)); }

std::string TakeFirstLogError() { return std::exchange(first_error, std::string()); }

}  // namespace stars
