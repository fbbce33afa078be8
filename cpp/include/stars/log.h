// llama.cpp's log (and ggml's), taken over from whatever callback was set before, and queued for
// a reader instead of printed. The callback takes no lock a caller could hold and never the
// Python GIL: it runs on any thread, inside llama.cpp, often while the GIL is released.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace stars {

// Python's logging levels, which the queue uses for llama.cpp's.
enum class LogLevel : int { kDebug = 10, kInfo = 20, kWarning = 30, kError = 40 };

struct LogLine {
  LogLevel level = LogLevel::kInfo;
  std::string text;  // one line, without its newline
};

// Installs the callback with llama_log_set, once per process (later calls only set the
// threshold). Lines at `threshold` (a Python logging level) or above are queued; the queue holds
// kMaxQueuedLogLines and then drops the oldest.
void InstallLog(int threshold);
constexpr size_t kMaxQueuedLogLines = 4096;

// Lines below `threshold` are dropped at once, before any copy.
void SetLogThreshold(int threshold);

// Waits up to `timeout` for queued lines and returns all of them, oldest first (empty on time
// out). Also returns how many lines were dropped since the last call, in `dropped`.
std::vector<LogLine> TakeLogLines(std::chrono::milliseconds timeout, size_t* dropped);

// Makes every TakeLogLines waiting now return at once (for a reader that is stopping).
void WakeLogReaders();

// Queues a warning of stars' own among llama.cpp's lines (as llama.cpp's log callback would).
void LogWarning(std::string line);

// The first error line llama.cpp logged on the calling thread since the last call, whatever the
// threshold; empty when none. For errors that llama.cpp reports only in its log.
std::string TakeFirstLogError();

}  // namespace stars
