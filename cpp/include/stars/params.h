// Generation parameters. Names are the same in C++, Python, the CLI and JSON (docs/parameters.md,
// docs/stars.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace stars {

enum class Mode { kPlain, kBestOfN, kStars, kCards };
enum class Acceptance { kSoft, kHard };
// How wide a STARS round is: "adaptive" picks each round's width up to `candidates` from the
// prompt's acceptance rate and the measured decode cost; "fixed" always samples
// min(candidates, attempts left). Outputs are the same either way; only the cost differs.
enum class Width { kAdaptive, kFixed };
// The KV cache's element type. "q8_0" halves it against "f16" (llama.cpp's default) and needs
// llama.cpp's flash attention, whose CPU results depend on how tokens are split into batches;
// "f32" doubles it, for the closest match between incremental and from-scratch scores.
enum class KvType { kF16, kQ8_0, kF32 };
// Where the policy's candidates draw their tokens. "backend" samples inside llama.cpp's compute
// graph (its backend sampling API), so that only token ids come back; "host" samples on the
// CPU from each logits row; "auto" takes "backend" when the model is offloaded to a GPU.
enum class Sampling { kAuto, kBackend, kHost };
// How a context lays out its sequences' KV cells. "isolated": one KV stream per sequence (a fork
// copies its trunk's stream), weights never repacked and flash attention off on the CPU, so that
// a sequence's logits depend only on its own tokens: its text never depends on what else runs.
// "shared": one pool of cells for every sequence (a fork shares its trunk's cells, nothing is
// copied): less memory for long contexts, but on quantized models a sequence's numerics shift
// with where its cells sit among the others'.
enum class KvLayout { kIsolated, kShared };

// Where a judge reward's question stands (rewards.h, JudgeOptions). kQuestionFirst asks it
// before the exchange, so that per candidate the judge decodes only the segment, the template's
// closing tokens and the answer cue; kQuestionLast asks it after the response, which costs the
// whole question per candidate.
enum class JudgeLayout { kQuestionFirst, kQuestionLast };

// The names every front end uses ("plain", "best_of_n", "stars"; "soft", "hard"; ...), defined
// once per enum in params.cc. Parse* throws ParameterError naming the parameter and the value.
const char* ModeName(Mode mode);
const char* AcceptanceName(Acceptance acceptance);
const char* WidthName(Width width);
const char* KvTypeName(KvType type);
const char* SamplingName(Sampling sampling);
const char* KvLayoutName(KvLayout layout);
const char* JudgeLayoutName(JudgeLayout layout);
Mode ParseMode(const std::string& name);
Acceptance ParseAcceptance(const std::string& name);
Width ParseWidth(const std::string& name);
KvType ParseKvType(const std::string& name);
Sampling ParseSampling(const std::string& name);
KvLayout ParseKvLayout(const std::string& name);
JudgeLayout ParseJudgeLayout(const std::string& name);
// Every name of an enum, in declaration order: the choices of its parameter.
template <typename Enum>
std::vector<std::string> EnumNames();

// The threads a context computes with: `n_threads`, or every hardware thread for 0. Throws
// ParameterError for a negative count or more than the machine has (OpenMP exits the process
// on a count it cannot start).
int32_t ResolveThreads(int32_t n_threads);

// Proposal sampling, as in llama.cpp: temperature 0 is greedy; top_k <= 0, top_p == 1 and
// min_p == 0 each switch that filter off.
struct SamplingParams {
  float temperature = 0.8f;
  int32_t top_k = 40;
  float top_p = 1.0f;
  float min_p = 0.0f;
  // Locally typical sampling; below 1 it has no backend sampler in llama.cpp, and the request
  // samples on the host.
  float typical_p = 1.0f;
  // llama.cpp's repetition penalty over the response's last kRepeatLastN tokens (1: off); it
  // has no backend sampler either.
  float repeat_penalty = 1.0f;
};
inline constexpr int32_t kRepeatLastN = 64;  // llama.cpp's default window

struct GenerationParams {
  Mode mode = Mode::kStars;
  int32_t segment_tokens = 16;  // K
  // CARDS: a segment also ends before a token whose next-token distribution has more entropy
  // than this (nats), where the policy grows unsure; segment_tokens caps it. 3 nats: chosen by
  // the quality sweep's worst task on SmolLM2 and Gemma-3-270M (docs/performance.md).
  double entropy_threshold = 3.0;
  int32_t candidates = 4;     // N: the widest a round may be
  int32_t max_attempts = 16;  // M
  // tau*, in the reward's units; empty means "auto": each attempt is held to the threshold that
  // the prompt's recent attempts would pass at the rate 1 / target_attempts (ramped by alpha).
  std::optional<double> threshold;
  double alpha = 0.5;
  // The soft rule's temperature in the reward's units; empty means "auto": half the standard
  // deviation of the prompt's recent attempts' rewards.
  std::optional<double> beta;
  // With threshold "auto": about how many attempts a segment takes, i.e. how selective STARS
  // is (1 accepts every attempt). Ignored with a float threshold. 4: the cheapest setting of
  // the quality sweep that wins at least 0.65 against plain on every task (docs/performance.md).
  double target_attempts = 4.0;
  Acceptance acceptance = Acceptance::kSoft;
  Width width = Width::kAdaptive;
  int32_t max_tokens = 256;  // T
  SamplingParams sampling;
  // Empty: a random seed, drawn when the request is submitted.
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  // Each emitted token's log-probability under the policy (result.h, TokenLogprob), with its
  // top_logprobs likeliest alternatives. It needs the logits on the host: a request that asks
  // for it samples there.
  bool logprobs = false;
  int32_t top_logprobs = 0;

  // Throws ParameterError naming the first parameter that is out of range (param_spec.h holds
  // the ranges). `has_reward` says
  // whether the engine has a reward; best_of_n and stars need one.
  void Validate(bool has_reward) const;
};

}  // namespace stars
