// The STARS engine: plain, best-of-N and STARS decoding over one llama.cpp context, many
// requests in lockstep rounds on one loop thread.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stars/params.h"
#include "stars/result.h"
#include "stars/reward.h"

namespace stars {

class Model;
class Tokenizer;
class EngineLoop;

struct EngineOptions {
  // Isolated layout: the most KV cells one request's sequence may hold (its prompt plus
  // max_tokens); the context itself is sized from the requests. Shared layout: the cells every
  // sequence of every request shares.
  int32_t n_ctx = 4096;
  // How the policy's sequences lay out their KV cells (params.h): isolated, the default, makes a
  // request's text independent of everything else that runs.
  KvLayout kv_layout = KvLayout::kIsolated;
  int32_t n_threads = 0;  // 0: all hardware threads
  int32_t max_queue = 0;  // requests waiting for admission before Submit refuses; 0: no limit
  KvType kv_type = KvType::kF16;  // the policy's KV cache
  // Where candidates draw their tokens (params.h). A round's first token is always drawn on the
  // host: the candidates share the trunk's one logits row.
  Sampling sampling = Sampling::kAuto;
  // Sequence ids the policy context starts with; 0: what the first requests need (from 8). It
  // is made again, larger, when the engine is idle and its queue needs more. A server that
  // expects many concurrent requests sets it up front, as growth waits for an idle moment.
  int32_t n_seq_max = 0;
};

// A prompt: plain text, or chat messages rendered through the model's chat template.
struct Prompt {
  std::string text;
  std::vector<std::string> roles;     // chat messages when non-empty ...
  std::vector<std::string> contents;  // ... with one content per role
  // The prompt key that its samples derive from (a dataset record's id, a request's key). When
  // empty, the key comes from the prompt's tokens and its occurrence among identical prompts of
  // the call: a result then depends neither on its position nor on the other prompts.
  std::optional<std::string> key;
  // Without a key: which occurrence this is among identical prompts (Generate counts them).
  uint64_t occurrence = 0;
};

struct GenerateHooks {
  // Called on the calling thread about every 20 ms while Generate waits. May throw to stop the
  // call (a KeyboardInterrupt): its requests are cancelled, then the exception propagates.
  std::function<void()> check_interrupt;
  // Called with each accepted segment of prompt `prompt`, in order, on the engine's loop
  // thread. May throw: that prompt's request fails with the exception, and Generate throws it.
  std::function<void(int32_t prompt, const Segment& segment)> on_segment;
};

// Receives one request's outcome, on the engine's loop thread: zero or more segments, then
// exactly one of OnResult or OnError. A sink must return quickly (it holds up every request).
// An exception thrown by OnSegment fails the request with that exception (OnError).
class RequestSink {
 public:
  virtual ~RequestSink() = default;
  virtual void OnSegment(const Segment& segment) { (void)segment; }
  virtual void OnResult(Result result) = 0;
  virtual void OnError(std::exception_ptr error) = 0;
};

using RequestId = int64_t;

// What the engine loop holds and has done: for /metrics and /health.
struct EngineMetrics {
  int64_t requests_submitted = 0;
  int64_t requests_finished = 0;  // with a Result (cancelled ones included)
  int64_t requests_failed = 0;    // with an error
  int64_t requests_cancelled = 0;
  int64_t requests_queued = 0;  // submitted, not yet admitted
  int64_t requests_active = 0;  // admitted, not yet done
  int64_t tokens_sampled = 0;
  int64_t tokens_accepted = 0;
  int64_t rounds = 0;              // request-rounds
  int64_t candidates_sampled = 0;  // over those rounds: mean round width = this / rounds
  int64_t decode_calls = 0;        // llama_decode calls of the policy
  int64_t decode_tokens = 0;       // tokens in them: mean decode batch = this / decode_calls
  // The micro-batches llama.cpp split them into, each a pass over the weights. In the isolated
  // layout a micro-batch holds consecutive sequence ids only, so gaps between the live ones
  // cost passes.
  int64_t decode_micro_batches = 0;
  int64_t reward_calls = 0;
  int64_t reward_rows = 0;
  double reward_seconds = 0.0;
  double decode_seconds = 0.0;
  int64_t kv_stream_copies = 0;  // isolated: forks, keeps and adoptions, a whole stream each
  int32_t sequences_in_use = 0;  // policy sequence ids held now
  int32_t sequences_total = 0;   // ids of the policy context now (it grows with the queue)
  int64_t contexts_created = 0;  // policy contexts made: 1, plus one per growth
  int32_t sampling_threads = 0;  // host sampling's worker threads, started once per engine
  int64_t cells_in_use = 0;      // policy KV cells held now
  int64_t cells_total = 0;       // of the policy context now (isolated: streams x cells)
};

// The engine: one loop thread owns the llama.cpp context and runs every request. Requests join
// at each round boundary, as sequence ids and KV cells allow (continuous batching at segment
// granularity), each with its own parameters, key and sink.
class Engine {
 public:
  // Starts the loop thread. `reward` may be null (plain mode only). Throws ParameterError for
  // an n_ctx under 16, a negative max_queue or an n_seq_max outside [0, MaxSequences()]. The
  // loop makes the policy context when the first requests arrive; when llama.cpp cannot create
  // it, the requests waiting fail with Error (its logged reason included).
  Engine(std::shared_ptr<Model> model, std::shared_ptr<Reward> reward,
         const EngineOptions& options);
  // Close()s; never throws, whichever thread it runs on.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues one request and returns its id. Validates `params` (ParameterError) and the prompt
  // (ParameterError when empty, ContextLengthError when it or its peak KV needs exceed the
  // context) before anything is decoded, on the calling thread. Throws QueueFullError when
  // `max_queue` requests already wait, ReentrantCallError when called from the loop thread (a
  // reward or sink of this engine) and EngineClosedError after Close().
  RequestId Submit(const Prompt& prompt, const GenerationParams& params,
                   std::shared_ptr<RequestSink> sink);

  // Withdraws a request: within one decode step its sequences and cells are freed and its sink
  // gets OnResult with FinishReason::kCancelled and what it accepted so far. Returns false when
  // the request is unknown or already done.
  bool Cancel(RequestId id);

  // Submits every prompt and waits for all of them: one Result per prompt. Prompt keys default
  // to the tokens plus the occurrence among identical prompts of this call. Validates every
  // prompt before submitting any. Throws the first error of a request (the reward's, a hook's)
  // after cancelling the others; the engine stays usable. Throws ReentrantCallError from the
  // loop thread.
  std::vector<Result> Generate(const std::vector<Prompt>& prompts, const GenerationParams& params,
                               const GenerateHooks& hooks);

  // Stops the loop thread: queued and running requests get OnError(EngineClosedError). Later
  // calls throw EngineClosedError. Idempotent; must not be called from the loop thread.
  void Close();

  // A snapshot, safe from any thread.
  EngineMetrics Metrics() const;

  const Model& model() const { return *model_; }
  bool has_reward() const { return reward_ != nullptr; }
  const std::shared_ptr<Reward>& reward() const { return reward_; }
  int32_t n_ctx() const { return options_.n_ctx; }

 private:
  std::shared_ptr<Model> model_;
  std::shared_ptr<Reward> reward_;
  EngineOptions options_;
  std::shared_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<EngineLoop> loop_;
};

}  // namespace stars
