#include "stars/params.h"

#include <cmath>
#include <string>
#include <vector>

#include "stars/errors.h"
#include "stars/param_spec.h"
#include "stars/result.h"

namespace stars {
namespace {

[[noreturn]] void Invalid(const std::string& name, const std::string& rule,
                          const std::string& value) {
  throw ParameterError(name, name + " must be " + rule + ", got " + value);
}

// Each enum's values with their names, once.
template <typename Enum>
struct Named {
  Enum value;
  const char* name;
};
template <typename Enum>
const std::vector<Named<Enum>>& Table();
template <>
const std::vector<Named<Mode>>& Table() {
  static const std::vector<Named<Mode>> t = {{Mode::kPlain, "plain"},
                                             {Mode::kBestOfN, "best_of_n"},
                                             {Mode::kStars, "stars"},
                                             {Mode::kCards, "cards"}};
  return t;
}
template <>
const std::vector<Named<Acceptance>>& Table() {
  static const std::vector<Named<Acceptance>> t = {{Acceptance::kSoft, "soft"},
                                                   {Acceptance::kHard, "hard"}};
  return t;
}
template <>
const std::vector<Named<Width>>& Table() {
  static const std::vector<Named<Width>> t = {{Width::kAdaptive, "adaptive"},
                                              {Width::kFixed, "fixed"}};
  return t;
}
template <>
const std::vector<Named<KvType>>& Table() {
  static const std::vector<Named<KvType>> t = {
      {KvType::kF16, "f16"}, {KvType::kQ8_0, "q8_0"}, {KvType::kF32, "f32"}};
  return t;
}
template <>
const std::vector<Named<Sampling>>& Table() {
  static const std::vector<Named<Sampling>> t = {
      {Sampling::kAuto, "auto"}, {Sampling::kBackend, "backend"}, {Sampling::kHost, "host"}};
  return t;
}
template <>
const std::vector<Named<KvLayout>>& Table() {
  static const std::vector<Named<KvLayout>> t = {{KvLayout::kIsolated, "isolated"},
                                                 {KvLayout::kShared, "shared"}};
  return t;
}
template <>
const std::vector<Named<JudgeLayout>>& Table() {
  static const std::vector<Named<JudgeLayout>> t = {{JudgeLayout::kQuestionFirst, "question_first"},
                                                    {JudgeLayout::kQuestionLast, "question_last"}};
  return t;
}

template <typename Enum>
const char* NameOf(Enum value) {
  for (const auto& entry : Table<Enum>()) {
    if (entry.value == value) return entry.name;
  }
  return "?";
}

template <typename Enum>
Enum Parse(const char* param, const std::string& name) {
  std::string choices;
  for (const auto& entry : Table<Enum>()) {
    if (name == entry.name) return entry.value;
    choices += (choices.empty() ? "'" : ", '") + std::string(entry.name) + "'";
  }
  Invalid(param, "one of " + choices, "'" + name + "'");
}

}  // namespace

template <typename Enum>
std::vector<std::string> EnumNames() {
  std::vector<std::string> names;
  for (const auto& entry : Table<Enum>()) names.emplace_back(entry.name);
  return names;
}
template std::vector<std::string> EnumNames<Mode>();
template std::vector<std::string> EnumNames<Acceptance>();
template std::vector<std::string> EnumNames<Width>();
template std::vector<std::string> EnumNames<KvType>();
template std::vector<std::string> EnumNames<Sampling>();
template std::vector<std::string> EnumNames<KvLayout>();
template std::vector<std::string> EnumNames<JudgeLayout>();

const char* ModeName(Mode mode) { return NameOf(mode); }
const char* AcceptanceName(Acceptance acceptance) { return NameOf(acceptance); }
const char* WidthName(Width width) { return NameOf(width); }
const char* KvTypeName(KvType type) { return NameOf(type); }
const char* SamplingName(Sampling sampling) { return NameOf(sampling); }
const char* KvLayoutName(KvLayout layout) { return NameOf(layout); }
const char* JudgeLayoutName(JudgeLayout layout) { return NameOf(layout); }
Mode ParseMode(const std::string& name) { return Parse<Mode>("mode", name); }
Acceptance ParseAcceptance(const std::string& name) {
  return Parse<Acceptance>("acceptance", name);
}
Width ParseWidth(const std::string& name) { return Parse<Width>("width", name); }
KvType ParseKvType(const std::string& name) { return Parse<KvType>("kv_type", name); }
Sampling ParseSampling(const std::string& name) { return Parse<Sampling>("sampling", name); }
KvLayout ParseKvLayout(const std::string& name) { return Parse<KvLayout>("kv_layout", name); }
JudgeLayout ParseJudgeLayout(const std::string& name) {
  return Parse<JudgeLayout>("judge_layout", name);
}

int32_t ResolveThreads(int32_t n_threads) {
  CheckParam(FindParam("n_threads"), int64_t{n_threads});  // its range is the spec's
  return n_threads == 0 ? static_cast<int32_t>(*FindParam("n_threads").max) : n_threads;
}

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
  // Every range is the spec's; a struct set field by field in C++ is held to the same rules as
  // a front end's values.
  Settings settings;
  settings.params = *this;
  for (const ParamSpec& spec : ParamSpecs()) {
    if (spec.group == ParamGroup::kGeneration) CheckParam(spec, spec.get(settings));
  }
  if (top_logprobs > 0 && !logprobs) {
    throw ParameterError("top_logprobs", "top_logprobs needs logprobs=true");
  }
  if (mode != Mode::kPlain && !has_reward) {
    throw ParameterError("mode", std::string("mode='") + ModeName(mode) +
                                     "' needs a reward: pass reward= to the Engine");
  }
}

}  // namespace stars
