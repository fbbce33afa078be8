#include "stars/params.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

#include "stars/errors.h"
#include "stars/result.h"

namespace stars {
namespace {

[[noreturn]] void Invalid(const std::string& name, const std::string& rule,
                          const std::string& value) {
  throw ParameterError(name + " must be " + rule + ", got " + value);
}

}  // namespace

Mode ParseMode(const std::string& name) {
  if (name == "plain") return Mode::kPlain;
  if (name == "best_of_n") return Mode::kBestOfN;
  if (name == "stars") return Mode::kStars;
  Invalid("mode", "one of 'plain', 'best_of_n', 'stars'", "'" + name + "'");
}

Acceptance ParseAcceptance(const std::string& name) {
  if (name == "soft") return Acceptance::kSoft;
  if (name == "hard") return Acceptance::kHard;
  Invalid("acceptance", "one of 'soft', 'hard'", "'" + name + "'");
}

Width ParseWidth(const std::string& name) {
  if (name == "adaptive") return Width::kAdaptive;
  if (name == "fixed") return Width::kFixed;
  Invalid("width", "one of 'adaptive', 'fixed'", "'" + name + "'");
}

KvType ParseKvType(const std::string& name) {
  if (name == "f16") return KvType::kF16;
  if (name == "q8_0") return KvType::kQ8_0;
  if (name == "f32") return KvType::kF32;
  Invalid("kv_type", "one of 'f16', 'q8_0', 'f32'", "'" + name + "'");
}

Sampling ParseSampling(const std::string& name) {
  if (name == "auto") return Sampling::kAuto;
  if (name == "backend") return Sampling::kBackend;
  if (name == "host") return Sampling::kHost;
  Invalid("sampling", "one of 'auto', 'backend', 'host'", "'" + name + "'");
}

KvLayout ParseKvLayout(const std::string& name) {
  if (name == "isolated") return KvLayout::kIsolated;
  if (name == "shared") return KvLayout::kShared;
  Invalid("kv_layout", "one of 'isolated', 'shared'", "'" + name + "'");
}

int32_t ResolveThreads(int32_t n_threads) {
  const int32_t hardware = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  if (n_threads < 0 || n_threads > hardware) {
    Invalid("n_threads",
            "in [0, " + std::to_string(hardware) + "] (0: all " + std::to_string(hardware) +
                " hardware threads of this machine)",
            std::to_string(n_threads));
  }
  return n_threads == 0 ? hardware : n_threads;
}

const char* KvLayoutName(KvLayout layout) {
  return layout == KvLayout::kIsolated ? "isolated" : "shared";
}

const char* SamplingName(Sampling sampling) {
  switch (sampling) {
    case Sampling::kAuto:
      return "auto";
    case Sampling::kBackend:
      return "backend";
    case Sampling::kHost:
      return "host";
  }
  return "?";
}

const char* KvTypeName(KvType type) {
  switch (type) {
    case KvType::kF16:
      return "f16";
    case KvType::kQ8_0:
      return "q8_0";
    case KvType::kF32:
      return "f32";
  }
  return "?";
}

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kPlain:
      return "plain";
    case Mode::kBestOfN:
      return "best_of_n";
    case Mode::kStars:
      return "stars";
  }
  return "?";
}

const char* AcceptanceName(Acceptance acceptance) {
  return acceptance == Acceptance::kSoft ? "soft" : "hard";
}

const char* WidthName(Width width) { return width == Width::kAdaptive ? "adaptive" : "fixed"; }

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "length";
}

void GenerationParams::Validate(bool has_reward) const {
  if (segment_tokens < 1) Invalid("segment_tokens", ">= 1", std::to_string(segment_tokens));
  if (candidates < 1) Invalid("candidates", ">= 1", std::to_string(candidates));
  if (max_attempts < 1) Invalid("max_attempts", ">= 1", std::to_string(max_attempts));
  if (max_tokens < 1) Invalid("max_tokens", ">= 1", std::to_string(max_tokens));
  if (threshold && !std::isfinite(*threshold))
    Invalid("threshold", "finite or 'auto'", std::to_string(*threshold));
  if (!std::isfinite(alpha) || alpha < 0.0 || alpha > 1.0)
    Invalid("alpha", "in [0, 1]", std::to_string(alpha));
  if (beta && (!std::isfinite(*beta) || *beta <= 0.0))
    Invalid("beta", "> 0 or 'auto'", std::to_string(*beta));
  if (!std::isfinite(target_attempts) || target_attempts < 1.0)
    Invalid("target_attempts", ">= 1", std::to_string(target_attempts));
  const float temperature = sampling.temperature;
  if (!std::isfinite(temperature) || temperature < 0.0f) {
    Invalid("temperature", ">= 0", std::to_string(temperature));
  }
  const float top_p = sampling.top_p;
  if (!std::isfinite(top_p) || top_p <= 0.0f || top_p > 1.0f)
    Invalid("top_p", "in (0, 1]", std::to_string(top_p));
  const float min_p = sampling.min_p;
  if (!std::isfinite(min_p) || min_p < 0.0f || min_p > 1.0f)
    Invalid("min_p", "in [0, 1]", std::to_string(min_p));
  const float typical_p = sampling.typical_p;
  if (!std::isfinite(typical_p) || typical_p <= 0.0f || typical_p > 1.0f)
    Invalid("typical_p", "in (0, 1]", std::to_string(typical_p));
  if (sampling.top_k < 0)
    Invalid("top_k", ">= 0 (0 switches it off)", std::to_string(sampling.top_k));
  for (const std::string& s : stop) {
    if (s.empty()) Invalid("stop", "a list of non-empty strings", "an empty string");
  }
  if (mode != Mode::kPlain && !has_reward) {
    throw ParameterError(std::string("mode='") + ModeName(mode) +
                         "' needs a reward: pass reward= to the Engine");
  }
}

}  // namespace stars
