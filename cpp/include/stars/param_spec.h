// Every setting a front end takes, declared once: the generation parameters, the engine's
// options and the reward spec's options. Each entry has its name, type, default, range or
// choices, help text and the front ends that take it; parsing, validation and defaults all come
// from it (as llama.cpp's common/arg.cpp declares each flag once). The Python package, both
// CLIs, the server, the Ray workers, a dataset run's recorded settings and the parameter
// table of docs/parameters.md are generated from this table.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "stars/engine.h"
#include "stars/params.h"
#include "stars/rewards.h"

namespace stars {

// What one run of a front end is set to.
struct Settings {
  GenerationParams params;
  EngineOptions engine;
  int32_t n_gpu_layers = 0;  // layers of the policy (and of a GGUF reward) offloaded to a GPU
  // A reward spec (MakeReward; "python:MODULE:FUNCTION" in Python only, or "none"). Plain mode,
  // which needs none, skips the default one.
  std::string reward = "judge:policy";
  JudgeOptions judge;  // its question, answers and layout; the rest comes from `engine`
};

// MakeReward's options for `settings`: the judge's, and the engine's KV type, layout, context
// and threads.
RewardSpecOptions RewardOptionsOf(const Settings& settings);

// A setting's value as the front ends hand it over. monostate: "auto" for a float-or-auto
// setting, "random" for the seed.
using ParamValue = std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string,
                                std::vector<std::string>>;

enum class ParamType {
  kInt,          // int64_t, within the int32 range
  kFloat,        // double, finite
  kFloatOrAuto,  // double or monostate ("auto")
  kChoice,       // std::string among choices
  kText,         // std::string
  kTextList,     // std::vector<std::string>
  kSeed,         // uint64_t or monostate (a random seed)
  kBool,         // bool
};
const char* ParamTypeName(ParamType type);  // "int", "float", "float|auto", ...

enum class ParamGroup { kGeneration, kEngine, kReward };
const char* ParamGroupName(ParamGroup group);  // "generation", "engine", "reward"

// The front ends that take a setting, as bits.
enum FrontEnd : uint32_t {
  kPython = 1u << 0,       // stars_cpp.Engine / Engine.generate keywords
  kCliGenerate = 1u << 1,  // stars-cpp generate
  kCliServe = 1u << 2,     // stars-cpp serve (generation parameters: every request's defaults)
  kCliRun = 1u << 3,       // stars-cpp run
  kHttp = 1u << 4,         // a request's JSON field on the server
  kNativeCli = 1u << 5,    // stars-cli
  kRay = 1u << 6,          // a Ray worker's Engine (stars-cpp run --ray)
};
const char* FrontEndName(FrontEnd front_end);  // "python", "generate", "serve", ...
inline constexpr FrontEnd kFrontEnds[] = {kPython, kCliGenerate, kCliServe, kCliRun,
                                          kHttp,   kNativeCli,   kRay};

struct ParamSpec {
  std::string name;  // the one name in C++, Python, the CLIs (--name, --name-with-dashes), JSON
  ParamGroup group;
  ParamType type;
  std::string help;
  uint32_t front_ends;
  std::vector<std::string> choices;  // kChoice
  std::optional<double> min, max;    // numbers; inclusive unless *_exclusive
  bool min_exclusive = false;
  bool max_exclusive = false;
  std::string note;  // what a special value means, e.g. "0 switches it off"
  // `max` is this machine's hardware threads: the docs say so in words, errors give the number.
  bool max_is_hardware_threads = false;
  // Whether a response's text can depend on it: a dataset run records these and refuses to
  // resume under other values.
  bool changes_output = true;
  // The default of `stars-cpp serve` where it differs (empty: the same as elsewhere).
  std::optional<ParamValue> serve_default;
  std::function<ParamValue(const Settings&)> get;
  std::function<void(Settings&, const ParamValue&)> set;

  ParamValue Default() const { return get(Settings{}); }
  bool TakenBy(FrontEnd front_end) const { return (front_ends & front_end) != 0; }
};

// The table, in the order of docs/parameters.md.
const std::vector<ParamSpec>& ParamSpecs();

// The entry named `name`; throws ParameterError (param `name`) for an unknown one.
const ParamSpec& FindParam(const std::string& name);

// Checks `value` against the spec's type, range or choices and stores it. Throws
// ParameterError naming the setting.
void SetParam(Settings& settings, const std::string& name, const ParamValue& value);

// Throws ParameterError naming the setting when `value` is not of its type or out of range.
void CheckParam(const ParamSpec& spec, const ParamValue& value);

// A value from command-line text ("auto" or "random" where the type allows it; a list of one).
// Throws ParameterError naming the setting ("invalid int value: 'x'"); the range is
// CheckParam's.
ParamValue ParseParamText(const ParamSpec& spec, const std::string& text);

// The value as docs/parameters.md and --help write it: 16, 0.8, "auto", "random", "soft", [].
std::string FormatParamValue(const ParamSpec& spec, const ParamValue& value);

// The range or choices in words, as docs/parameters.md gives them: ">= 1", "in (0, 1]", "one of
// 'soft', 'hard'". `concrete`: with this machine's numbers, as error messages give them.
std::string ParamRule(const ParamSpec& spec, bool concrete = false);

// Throws ParameterError naming the first of the engine's options out of its spec's range.
void CheckEngineOptions(const EngineOptions& options);

// A random seed, for a seed left unset.
uint64_t RandomSeed();

}  // namespace stars
