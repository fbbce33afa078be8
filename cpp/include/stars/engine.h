// The STARS engine: plain, best-of-N and STARS decoding over one llama.cpp context, many
// prompts in lockstep.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "stars/params.h"
#include "stars/result.h"
#include "stars/reward.h"

namespace stars {

class Model;
class Context;
class RoundCostModel;
class Tokenizer;

struct EngineOptions {
  int32_t n_ctx = 4096;
  int32_t n_threads = 0;  // 0: all hardware threads
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
};

struct GenerateHooks {
  // Called after every llama_decode step. May throw to stop the call (a KeyboardInterrupt).
  std::function<void()> check_interrupt;
  // Called with each accepted segment of prompt `prompt`, in order. May throw to stop.
  std::function<void(int32_t prompt, const Segment& segment)> on_segment;
};

class Engine {
 public:
  // `reward` may be null (plain mode only).
  Engine(std::shared_ptr<Model> model, std::shared_ptr<Reward> reward,
         const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Generates one Result per prompt. Validates `params` (ParameterError) and every prompt's
  // length (ContextLengthError) before anything is decoded. One call at a time: concurrent
  // callers wait on an internal lock. Throws what the reward or a hook throws, after which the
  // engine is still usable.
  std::vector<Result> Generate(const std::vector<Prompt>& prompts, const GenerationParams& params,
                               const GenerateHooks& hooks);

  const Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  bool has_reward() const { return reward_ != nullptr; }
  const std::shared_ptr<Reward>& reward() const { return reward_; }
  int32_t n_ctx() const { return options_.n_ctx; }

 private:
  Context& ContextFor(int32_t n_seq);

  std::shared_ptr<Model> model_;
  std::shared_ptr<Reward> reward_;
  EngineOptions options_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Context> context_;
  std::unique_ptr<RoundCostModel> costs_;  // decode and reward costs measured across calls
  std::mutex mutex_;
};

}  // namespace stars
