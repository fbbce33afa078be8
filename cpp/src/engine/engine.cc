#include "stars/engine.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "algorithm/admission.h"
#include "algorithm/attempt_key.h"
#include "engine/engine_loop.h"
#include "llama/context.h"
#include "llama/policy_decoder.h"
#include "llama/tokenizer.h"
#include "stars/errors.h"
#include "stars/model.h"
#include "stars/param_spec.h"
#include "stars/probe.h"

namespace stars {
namespace {

// The text a reward sees as the prompt: what the user wrote, not the rendered template.
std::string RewardText(const Prompt& prompt) {
  if (prompt.roles.empty()) return prompt.text;
  for (size_t i = prompt.roles.size(); i-- > 0;) {
    if (prompt.roles[i] == "user") return prompt.contents[i];
  }
  return prompt.contents.back();
}

// Validates and tokenizes one prompt into a request the loop can run.
std::unique_ptr<PromptRun> PrepareRun(const Tokenizer& tokenizer, const EngineOptions& options,
                                      const Prompt& prompt, const GenerationParams& params,
                                      const std::string& where) {
  std::vector<llama_token> tokens;
  if (prompt.roles.empty()) {
    tokens = tokenizer.Tokenize(prompt.text, true, false);
  } else {
    if (prompt.roles.size() != prompt.contents.size()) {
      throw ParameterError("prompt", where + ": roles and contents differ in length");
    }
    std::vector<ChatMessage> messages;
    for (size_t m = 0; m < prompt.roles.size(); ++m) {
      messages.push_back({prompt.roles[m], prompt.contents[m]});
    }
    tokens = tokenizer.TokenizeChat(tokenizer.ApplyChatTemplate(messages));
  }
  std::unique_ptr<PromptRun> run = MakePromptRun(params, std::move(tokens), options, where);
  run->reward_text = RewardText(prompt);
  run->key = prompt.key ? PromptKeyOfId(*prompt.key)
                        : PromptKeyOfTokens(run->prompt_tokens, prompt.occurrence);
  return run;
}

// `params` validated, with a seed drawn when it has none: one per call, for all its prompts.
GenerationParams CheckParams(const GenerationParams& params, bool has_reward) {
  params.Validate(has_reward);
  const int32_t max_seq = MaxSequences();
  if (SequencesPerPrompt(params.mode, params.candidates) > max_seq) {
    throw ParameterError("candidates", "candidates must be at most " + std::to_string(max_seq - 2) +
                                           " (llama.cpp holds at most " + std::to_string(max_seq) +
                                           " sequences), got " + std::to_string(params.candidates));
  }
  GenerationParams resolved = params;
  if (!resolved.seed) resolved.seed = RandomSeed();
  return resolved;
}

// Collects the outcomes of one Generate call's requests; the caller waits on it.
class GenerateSink : public RequestSink {
 public:
  struct Shared {
    std::mutex mutex;
    std::condition_variable done;
    std::vector<Result> results;
    std::exception_ptr error;  // the first request error
    size_t remaining = 0;
  };

  GenerateSink(std::shared_ptr<Shared> shared, int32_t index, const GenerateHooks& hooks)
      : shared_(std::move(shared)), index_(index), hooks_(hooks) {}

  void OnSegment(const Segment& segment) override {
    if (hooks_.on_segment) hooks_.on_segment(index_, segment);
  }
  void OnResult(Result result) override {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->results[static_cast<size_t>(index_)] = std::move(result);
    Done();
  }
  void OnError(std::exception_ptr error) override {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    if (!shared_->error) shared_->error = std::move(error);
    Done();
  }

 private:
  void Done() {
    if (--shared_->remaining == 0) shared_->done.notify_all();
  }

  std::shared_ptr<Shared> shared_;
  int32_t index_;
  const GenerateHooks& hooks_;  // outlives the call: Generate waits for every outcome
};

}  // namespace

Engine::Engine(std::shared_ptr<Model> model, std::shared_ptr<Reward> reward,
               const EngineOptions& options)
    : model_(std::move(model)),
      reward_(std::move(reward)),
      options_(options),
      tokenizer_(std::make_shared<Tokenizer>(*model_)) {
  CheckEngineOptions(options_);
  ResolveThreads(options_.n_threads);
  if (options_.n_seq_max > MaxSequences()) {
    throw ParameterError("n_seq_max", "n_seq_max must be in [0, " + std::to_string(MaxSequences()) +
                                          "] (0: sized to the requests), got " +
                                          std::to_string(options_.n_seq_max));
  }
  const bool backend = options_.sampling == Sampling::kBackend ||
                       (options_.sampling == Sampling::kAuto && model_->offloaded());
  // A probe fitted on this policy reads the last layer's hidden states the engine's own decodes
  // give (other layers' inputs it decodes itself).
  int32_t hidden_state_size = 0;
  if (const auto* probe = dynamic_cast<const ProbeReward*>(reward_.get())) {
    if (probe->layer() == model_->n_layer() && probe->policy().path() == model_->path() &&
        probe->n_embd() == model_->n_embd()) {
      hidden_state_size = model_->n_embd();
    }
  }
  loop_ = std::make_unique<EngineLoop>(
      [model = model_](const ContextOptions& context) { return MakeLlamaDecoder(model, context); },
      tokenizer_, reward_, options_, backend, hidden_state_size);
}

Engine::~Engine() {
  // Never throws. The last reference may drop on the loop thread itself (a garbage collection
  // inside a reward callback), which cannot join itself: the loop then ends on its own.
  if (loop_->OnLoopThread()) {
    EngineLoop::Abandon(std::move(loop_));
  } else {
    loop_->Close();
  }
}

void Engine::Close() {
  if (loop_->OnLoopThread()) {
    throw ReentrantCallError("an Engine cannot be closed from its own reward or callback");
  }
  loop_->Close();
}

EngineMetrics Engine::Metrics() const { return loop_->Metrics(); }

bool Engine::Cancel(RequestId id) { return loop_->Cancel(id); }

RequestId Engine::Submit(const Prompt& prompt, const GenerationParams& params,
                         std::shared_ptr<RequestSink> sink) {
  if (loop_->OnLoopThread()) {
    throw ReentrantCallError(
        "a reward or callback called back into the Engine that is running it: it would wait on "
        "itself forever; use another Engine");
  }
  if (sink == nullptr) throw ParameterError("Submit needs a sink");
  const GenerationParams resolved = CheckParams(params, reward_ != nullptr);
  std::vector<std::unique_ptr<PromptRun>> runs;
  runs.push_back(PrepareRun(*tokenizer_, options_, prompt, resolved, "prompt"));
  runs.back()->sink = std::move(sink);
  return loop_->Submit(std::move(runs), true).front();
}

std::vector<Result> Engine::Generate(const std::vector<Prompt>& prompts,
                                     const GenerationParams& params, const GenerateHooks& hooks) {
  if (loop_->OnLoopThread()) {
    throw ReentrantCallError(
        "a reward or callback called back into the Engine that is running it: it would wait on "
        "itself forever; use another Engine");
  }
  const GenerationParams resolved = CheckParams(params, reward_ != nullptr);
  auto shared = std::make_shared<GenerateSink::Shared>();
  std::vector<std::unique_ptr<PromptRun>> runs;
  std::map<std::vector<llama_token>, uint64_t> occurrences;  // of each token list in this call
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Prompt& prompt = prompts[i];
    std::unique_ptr<PromptRun> run =
        PrepareRun(*tokenizer_, options_, prompt, resolved, "prompt " + std::to_string(i));
    if (!prompt.key) {
      run->key = PromptKeyOfTokens(run->prompt_tokens, occurrences[run->prompt_tokens]++);
    }
    run->sink = std::make_shared<GenerateSink>(shared, static_cast<int32_t>(i), hooks);
    runs.push_back(std::move(run));
  }
  if (runs.empty()) return {};
  shared->results.resize(runs.size());
  shared->remaining = runs.size();
  const std::vector<RequestId> ids = loop_->Submit(std::move(runs), false);
  std::exception_ptr interrupt;
  std::unique_lock<std::mutex> lock(shared->mutex);
  bool cancelled = false;
  while (shared->remaining > 0) {
    shared->done.wait_for(lock, std::chrono::milliseconds(20));
    if (shared->remaining == 0) break;
    if (!cancelled && (shared->error || hooks.check_interrupt)) {
      if (!shared->error) {
        lock.unlock();
        try {
          hooks.check_interrupt();
        } catch (...) {
          interrupt = std::current_exception();
        }
        lock.lock();
      }
      if (interrupt || shared->error) {
        // Stop the call's other requests: their outcomes no longer matter.
        cancelled = true;
        lock.unlock();
        for (RequestId id : ids) loop_->Cancel(id);
        lock.lock();
      }
    }
  }
  if (interrupt) std::rethrow_exception(interrupt);
  if (shared->error) std::rethrow_exception(shared->error);
  return std::move(shared->results);
}

}  // namespace stars
