#include "stars/param_spec.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "stars/errors.h"

namespace stars {
namespace {

constexpr uint32_t kEveryFrontEnd =
    kPython | kCliGenerate | kCliServe | kCliRun | kHttp | kNativeCli | kRay;
// The engine's options: every front end that makes an Engine.
constexpr uint32_t kEngineFrontEnds =
    kPython | kCliGenerate | kCliServe | kCliRun | kNativeCli | kRay;
// A reward spec and its options: the command lines (Python callers pass reward objects).
constexpr uint32_t kRewardFrontEnds = kCliGenerate | kCliServe | kCliRun | kNativeCli | kRay;

// A float32 field as the double of its shortest decimal: 0.8f reads 0.8, as it was written.
double AsDouble(float value) {
  char buffer[32];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return ec == std::errc() ? std::strtod(std::string(buffer, end).c_str(), nullptr) : value;
}
double AsDouble(double value) { return value; }

// A field of Settings, for get and set: `field` is a generic lambda returning a reference.
// A spec with its identity set; the builders below fill in the rest.
ParamSpec Base(std::string name, ParamGroup group, ParamType type, std::string help,
               uint32_t front_ends) {
  ParamSpec spec;
  spec.name = std::move(name);
  spec.group = group;
  spec.type = type;
  spec.help = std::move(help);
  spec.front_ends = front_ends;
  return spec;
}

template <typename Field>
ParamSpec Int(std::string name, ParamGroup group, uint32_t front_ends, std::optional<double> min,
              std::string note, std::string help, Field field) {
  ParamSpec spec = Base(std::move(name), group, ParamType::kInt, std::move(help), front_ends);
  spec.min = min;
  spec.note = std::move(note);
  spec.get = [field](const Settings& s) { return ParamValue(int64_t{field(s)}); };
  spec.set = [field](Settings& s, const ParamValue& v) {
    field(s) = static_cast<int32_t>(std::get<int64_t>(v));
  };
  return spec;
}

template <typename Field>
ParamSpec Float(std::string name, uint32_t front_ends, std::optional<double> min, bool min_open,
                std::optional<double> max, bool max_open, std::string help, Field field) {
  ParamSpec spec = Base(std::move(name), ParamGroup::kGeneration, ParamType::kFloat,
                        std::move(help), front_ends);
  spec.min = min;
  spec.min_exclusive = min_open;
  spec.max = max;
  spec.max_exclusive = max_open;
  spec.get = [field](const Settings& s) { return ParamValue(AsDouble(field(s))); };
  spec.set = [field](Settings& s, const ParamValue& v) {
    using T = std::remove_reference_t<decltype(field(s))>;
    field(s) = static_cast<T>(std::get<double>(v));
  };
  return spec;
}

template <typename Field>
ParamSpec FloatOrAuto(std::string name, std::optional<double> min, bool min_open, std::string help,
                      Field field) {
  ParamSpec spec = Base(std::move(name), ParamGroup::kGeneration, ParamType::kFloatOrAuto,
                        std::move(help), kEveryFrontEnd);
  spec.min = min;
  spec.min_exclusive = min_open;
  spec.get = [field](const Settings& s) {
    return field(s) ? ParamValue(*field(s)) : ParamValue(std::monostate{});
  };
  spec.set = [field](Settings& s, const ParamValue& v) {
    if (const double* d = std::get_if<double>(&v)) {
      field(s) = *d;
    } else {
      field(s).reset();
    }
  };
  return spec;
}

template <typename Enum, typename Field>
ParamSpec Choice(std::string name, ParamGroup group, uint32_t front_ends, std::string help,
                 Enum (*parse)(const std::string&), const char* (*print)(Enum), Field field) {
  ParamSpec spec = Base(std::move(name), group, ParamType::kChoice, std::move(help), front_ends);
  spec.choices = EnumNames<Enum>();
  spec.get = [field, print](const Settings& s) { return ParamValue(std::string(print(field(s)))); };
  spec.set = [field, parse](Settings& s, const ParamValue& v) {
    field(s) = parse(std::get<std::string>(v));
  };
  return spec;
}

template <typename Field>
ParamSpec Text(std::string name, std::string help, Field field) {
  ParamSpec spec = Base(std::move(name), ParamGroup::kReward, ParamType::kText, std::move(help),
                        kRewardFrontEnds);
  spec.get = [field](const Settings& s) { return ParamValue(field(s)); };
  spec.set = [field](Settings& s, const ParamValue& v) { field(s) = std::get<std::string>(v); };
  return spec;
}

std::vector<ParamSpec> MakeSpecs() {
  using G = ParamGroup;
  std::vector<ParamSpec> specs;
  // Generation parameters: per request.
  specs.push_back(Choice<Mode>(
      "mode", G::kGeneration, kEveryFrontEnd,
      "plain decoding, best_of_n (N whole responses, the best by reward), stars (segments "
      "accepted by reward) or cards (stars with segments that end where the policy's "
      "next-token entropy rises)",
      ParseMode, ModeName, [](auto& s) -> auto& { return s.params.mode; }));
  specs.push_back(Int("segment_tokens", G::kGeneration, kEveryFrontEnd, 1, "",
                      "K: tokens per segment; a candidate ends early at end-of-generation or a "
                      "stop string",
                      [](auto& s) -> auto& { return s.params.segment_tokens; }));
  specs.push_back(Float("entropy_threshold", kEveryFrontEnd, 0.0, true, std::nullopt, false,
                        "mode cards: a segment ends before a token whose distribution has more "
                        "entropy than this, in nats (segment_tokens caps it)",
                        [](auto& s) -> auto& { return s.params.entropy_threshold; }));
  specs.push_back(Int("candidates", G::kGeneration, kEveryFrontEnd, 1, "",
                      "N: the widest a round may be: candidates sampled side by side (one "
                      "batched decode per step)",
                      [](auto& s) -> auto& { return s.params.candidates; }));
  specs.push_back(Int("max_attempts", G::kGeneration, kEveryFrontEnd, 1, "",
                      "M: attempts considered per segment before the best is taken (a fallback)",
                      [](auto& s) -> auto& { return s.params.max_attempts; }));
  specs.push_back(FloatOrAuto("threshold", std::nullopt, false,
                              "tau*: a float in the reward's units, or auto: set from the "
                              "prompt's own recent attempts",
                              [](auto& s) -> auto& { return s.params.threshold; }));
  specs.push_back(Float("target_attempts", kEveryFrontEnd, 1.0, false, std::nullopt, false,
                        "with threshold auto: about how many attempts a segment takes, i.e. how "
                        "selective STARS is (1 accepts everything)",
                        [](auto& s) -> auto& { return s.params.target_attempts; }));
  specs.push_back(Float("alpha", kEveryFrontEnd, 0.0, false, 1.0, false,
                        "where the threshold's ramp starts",
                        [](auto& s) -> auto& { return s.params.alpha; }));
  specs.push_back(FloatOrAuto("beta", 0.0, true,
                              "temperature of the soft rule, accept with probability "
                              "exp(min(0, (R - tau) / beta)); auto is half the spread of the "
                              "recent attempts' rewards",
                              [](auto& s) -> auto& { return s.params.beta; }));
  specs.push_back(Choice<Acceptance>("acceptance", G::kGeneration, kEveryFrontEnd,
                                     "soft (the rule above) or hard (accept when R >= tau)",
                                     ParseAcceptance, AcceptanceName,
                                     [](auto& s) -> auto& { return s.params.acceptance; }));
  specs.push_back(Choice<Width>(
      "width", G::kGeneration, kEveryFrontEnd,
      "adaptive: each round as wide as pays off, up to N, from measured costs; fixed: always "
      "min(N, attempts left). The output is the same either way",
      ParseWidth, WidthName, [](auto& s) -> auto& { return s.params.width; }));
  specs.push_back(Int("max_tokens", G::kGeneration, kEveryFrontEnd, 1, "",
                      "T: the response's length cap, never exceeded",
                      [](auto& s) -> auto& { return s.params.max_tokens; }));
  specs.push_back(Float("temperature", kEveryFrontEnd, 0.0, false, std::nullopt, false,
                        "proposal sampling through llama.cpp's sampler chain (0 is greedy)",
                        [](auto& s) -> auto& { return s.params.sampling.temperature; }));
  specs.push_back(Int("top_k", G::kGeneration, kEveryFrontEnd, 0, "0 switches it off",
                      "proposal sampling: the k likeliest tokens",
                      [](auto& s) -> auto& { return s.params.sampling.top_k; }));
  specs.push_back(Float("top_p", kEveryFrontEnd, 0.0, true, 1.0, false,
                        "proposal sampling: nucleus (1 switches it off)",
                        [](auto& s) -> auto& { return s.params.sampling.top_p; }));
  specs.push_back(Float("min_p", kEveryFrontEnd, 0.0, false, 1.0, false,
                        "proposal sampling: tokens at least min_p times the likeliest's "
                        "probability (0 switches it off)",
                        [](auto& s) -> auto& { return s.params.sampling.min_p; }));
  specs.push_back(Float("typical_p", kEveryFrontEnd, 0.0, true, 1.0, false,
                        "proposal sampling: locally typical (1 switches it off; below 1 a request "
                        "samples on the host)",
                        [](auto& s) -> auto& { return s.params.sampling.typical_p; }));
  specs.push_back(Float("repeat_penalty", kEveryFrontEnd, 0.0, true, std::nullopt, false,
                        "proposal sampling: llama.cpp's repetition penalty over the response's "
                        "last 64 tokens (1 switches it off; other values sample on the host)",
                        [](auto& s) -> auto& { return s.params.sampling.repeat_penalty; }));
  {
    ParamSpec seed =
        Base("seed", G::kGeneration, ParamType::kSeed,
             "the same seed, parameters and engine settings give the same tokens", kEveryFrontEnd);
    seed.note = "random: drawn per call";
    seed.get = [](const Settings& s) {
      return s.params.seed ? ParamValue(*s.params.seed) : ParamValue(std::monostate{});
    };
    seed.set = [](Settings& s, const ParamValue& v) {
      if (const uint64_t* u = std::get_if<uint64_t>(&v)) {
        s.params.seed = *u;
      } else {
        s.params.seed.reset();
      }
    };
    specs.push_back(std::move(seed));
  }
  {
    ParamSpec logprobs =
        Base("logprobs", G::kGeneration, ParamType::kBool,
             "return each emitted token's log-probability under the policy: the "
             "log-softmax of its raw logits, before temperature and truncation (the "
             "request samples on the host)",
             kEveryFrontEnd);
    logprobs.get = [](const Settings& s) { return ParamValue(s.params.logprobs); };
    logprobs.set = [](Settings& s, const ParamValue& v) { s.params.logprobs = std::get<bool>(v); };
    specs.push_back(std::move(logprobs));
  }
  {
    ParamSpec top = Int("top_logprobs", G::kGeneration, kEveryFrontEnd, 0, "",
                        "the likeliest alternatives given with each token's log-probability "
                        "(needs logprobs)",
                        [](auto& s) -> auto& { return s.params.top_logprobs; });
    top.max = 20;  // OpenAI's bound
    specs.push_back(std::move(top));
  }
  {
    ParamSpec stop =
        Base("stop", G::kGeneration, ParamType::kTextList,
             "stop strings, matched on the whole response; the text ends before the first "
             "one (a flag per string on the command line)",
             kEveryFrontEnd);
    stop.get = [](const Settings& s) { return ParamValue(s.params.stop); };
    stop.set = [](Settings& s, const ParamValue& v) {
      s.params.stop = std::get<std::vector<std::string>>(v);
    };
    specs.push_back(std::move(stop));
  }

  // The engine's options: per Engine.
  {
    ParamSpec n_ctx = Int("n_ctx", G::kEngine, kEngineFrontEnds, 16, "",
                          "isolated layout: the most KV cells one request's prompt plus "
                          "max_tokens may take; shared: the cells all requests share",
                          [](auto& s) -> auto& { return s.engine.n_ctx; });
    n_ctx.changes_output = false;
    specs.push_back(std::move(n_ctx));
  }
  specs.push_back(Int("n_gpu_layers", G::kEngine, kEngineFrontEnds, -1, "-1: every layer",
                      "layers of the policy (and of a GGUF reward) offloaded to a GPU",
                      [](auto& s) -> auto& { return s.n_gpu_layers; }));
  {
    ParamSpec n_threads =
        Int("n_threads", G::kEngine, kEngineFrontEnds, 0, "0: every hardware thread",
            "threads of the policy's and the rewards' decodes, at most the "
            "machine's hardware threads",
            [](auto& s) -> auto& { return s.engine.n_threads; });
    n_threads.changes_output = false;
    // OpenMP exits the process on a count it cannot start: no more than the machine has.
    n_threads.max = std::max(1u, std::thread::hardware_concurrency());
    n_threads.max_is_hardware_threads = true;
    specs.push_back(std::move(n_threads));
  }
  specs.push_back(Choice<KvType>(
      "kv_type", G::kEngine, kEngineFrontEnds,
      "the KV cache type of the policy and of a judge or causal reward (q8_0: half of f16's "
      "memory, needs flash attention)",
      ParseKvType, KvTypeName, [](auto& s) -> auto& { return s.engine.kv_type; }));
  specs.push_back(Choice<Sampling>(
      "sampling", G::kEngine, kEngineFrontEnds,
      "where candidates draw their tokens: backend (inside llama.cpp's graph), host, or auto "
      "(backend when the model is offloaded to a GPU)",
      ParseSampling, SamplingName, [](auto& s) -> auto& { return s.engine.sampling; }));
  specs.push_back(Choice<KvLayout>(
      "kv_layout", G::kEngine, kEngineFrontEnds,
      "isolated: a KV stream per sequence, so that a text never depends on what else runs; "
      "shared: one pool of cells (less memory for long contexts)",
      ParseKvLayout, KvLayoutName, [](auto& s) -> auto& { return s.engine.kv_layout; }));
  {
    ParamSpec max_queue = Int("max_queue", G::kEngine, kPython | kCliServe, 0, "0: no limit",
                              "requests waiting for admission before a submit is refused "
                              "(QueueFullError; the server answers 503)",
                              [](auto& s) -> auto& { return s.engine.max_queue; });
    max_queue.changes_output = false;
    max_queue.serve_default = ParamValue(int64_t{64});
    specs.push_back(std::move(max_queue));
  }
  {
    ParamSpec n_seq_max =
        Int("n_seq_max", G::kEngine, kPython | kCliServe, 0, "0: sized to the first requests",
            "sequence ids of the policy context from the start; it grows when "
            "the engine is idle and its queue needs more (a server expects "
            "concurrent requests)",
            [](auto& s) -> auto& { return s.engine.n_seq_max; });
    n_seq_max.changes_output = false;
    n_seq_max.serve_default = ParamValue(int64_t{64});
    specs.push_back(std::move(n_seq_max));
  }

  // The reward spec and its options: per command line.
  specs.push_back(Text("reward",
                       "classifier:PATH[:LABEL|POS,NEG], judge:PATH|policy, causal:PATH, "
                       "probe:PATH (a probe fitted on the policy), python:MODULE:FUNCTION (not in "
                       "stars-cli) or none; plain mode, which needs "
                       "none, skips the default one",
                       [](auto& s) -> auto& { return s.reward; }));
  specs.push_back(Text("judge_question", "the yes/no question a judge reward asks",
                       [](auto& s) -> auto& { return s.judge.question; }));
  specs.push_back(Text("judge_yes", "the judge's yes answer, one token of its vocabulary",
                       [](auto& s) -> auto& { return s.judge.yes; }));
  specs.push_back(Text("judge_no", "the judge's no answer, one token of its vocabulary",
                       [](auto& s) -> auto& { return s.judge.no; }));
  specs.push_back(Choice<JudgeLayout>(
      "judge_layout", G::kReward, kRewardFrontEnds,
      "where the judge's question stands: question_first (a candidate costs its segment) or "
      "question_last (the whole question per candidate)",
      ParseJudgeLayout, JudgeLayoutName, [](auto& s) -> auto& { return s.judge.layout; }));
  return specs;
}

// The shortest digits that read back as `value`: 1, 0.5, 1e-05.
std::string Shortest(double value) {
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, ec == std::errc() ? end : buffer);
}

// A float value as Python writes it, with a point ("3.0"): a float setting reads as one.
std::string Number(double value) {
  std::string text = Shortest(value);
  if (text.find_first_of(".eninf") == std::string::npos) text += ".0";
  return text;
}

std::string Quoted(const std::string& text) { return "'" + text + "'"; }

[[noreturn]] void Refuse(const ParamSpec& spec, const std::string& value) {
  throw ParameterError(spec.name,
                       spec.name + " must be " + ParamRule(spec, true) + ", got " + value);
}

std::string Shown(const ParamSpec& spec, const ParamValue& value) {
  if (const std::string* s = std::get_if<std::string>(&value)) return Quoted(*s);
  return FormatParamValue(spec, value);
}

}  // namespace

const char* ParamTypeName(ParamType type) {
  switch (type) {
    case ParamType::kInt:
      return "int";
    case ParamType::kFloat:
      return "float";
    case ParamType::kFloatOrAuto:
      return "float|auto";
    case ParamType::kChoice:
      return "choice";
    case ParamType::kText:
      return "str";
    case ParamType::kTextList:
      return "list[str]";
    case ParamType::kSeed:
      return "seed";
    case ParamType::kBool:
      return "bool";
  }
  return "?";
}

const char* ParamGroupName(ParamGroup group) {
  switch (group) {
    case ParamGroup::kGeneration:
      return "generation";
    case ParamGroup::kEngine:
      return "engine";
    case ParamGroup::kReward:
      return "reward";
  }
  return "?";
}

const char* FrontEndName(FrontEnd front_end) {
  switch (front_end) {
    case kPython:
      return "python";
    case kCliGenerate:
      return "generate";
    case kCliServe:
      return "serve";
    case kCliRun:
      return "run";
    case kHttp:
      return "http";
    case kNativeCli:
      return "stars-cli";
    case kRay:
      return "ray";
  }
  return "?";
}

const std::vector<ParamSpec>& ParamSpecs() {
  static const std::vector<ParamSpec> specs = MakeSpecs();
  return specs;
}

const ParamSpec& FindParam(const std::string& name) {
  for (const ParamSpec& spec : ParamSpecs()) {
    if (spec.name == name) return spec;
  }
  throw ParameterError(name, "unknown parameter '" + name + "'");
}

std::string ParamRule(const ParamSpec& spec, bool concrete) {
  std::string rule;
  switch (spec.type) {
    case ParamType::kChoice:
      for (const std::string& choice : spec.choices) {
        rule += (rule.empty() ? "one of " : ", ") + Quoted(choice);
      }
      return rule;
    case ParamType::kText:
      return "a string";
    case ParamType::kTextList:
      return "a list of non-empty strings";
    case ParamType::kSeed:
      return "an integer in [0, 2**64) or random";
    case ParamType::kBool:
      return "true or false";
    default:
      break;
  }
  const auto bound = [](double v) { return Shortest(v); };
  const std::string high = spec.max && spec.max_is_hardware_threads && !concrete
                               ? std::string("hardware threads")
                           : spec.max ? bound(*spec.max)
                                      : std::string();
  if (spec.min && spec.max) {
    rule = std::string("in ") + (spec.min_exclusive ? "(" : "[") + bound(*spec.min) + ", " + high +
           (spec.max_exclusive ? ")" : "]");
  } else if (spec.min) {
    rule = std::string(spec.min_exclusive ? "> " : ">= ") + bound(*spec.min);
  } else if (spec.max) {
    rule = std::string(spec.max_exclusive ? "< " : "<= ") + high;
  } else {
    rule = spec.type == ParamType::kInt ? "an integer" : "a finite number";
  }
  if (spec.type == ParamType::kFloatOrAuto) rule += " or 'auto'";
  if (!spec.note.empty()) rule += " (" + spec.note + ")";
  return rule;
}

void CheckParam(const ParamSpec& spec, const ParamValue& value) {
  double number = 0.0;
  switch (spec.type) {
    case ParamType::kInt: {
      const int64_t* i = std::get_if<int64_t>(&value);
      if (i == nullptr) Refuse(spec, "a value that is no integer");
      if (*i < std::numeric_limits<int32_t>::min() || *i > std::numeric_limits<int32_t>::max()) {
        throw ParameterError(spec.name,
                             spec.name + " must fit a 32-bit integer, got " + std::to_string(*i));
      }
      number = static_cast<double>(*i);
      break;
    }
    case ParamType::kFloatOrAuto:
      if (std::holds_alternative<std::monostate>(value)) return;
      [[fallthrough]];
    case ParamType::kFloat: {
      const double* d = std::get_if<double>(&value);
      if (d == nullptr) Refuse(spec, "a value that is no number");
      if (!std::isfinite(*d)) Refuse(spec, Number(*d));
      number = *d;
      break;
    }
    case ParamType::kChoice: {
      const std::string* s = std::get_if<std::string>(&value);
      if (s == nullptr) Refuse(spec, "a value that is no string");
      for (const std::string& choice : spec.choices) {
        if (*s == choice) return;
      }
      Refuse(spec, Quoted(*s));
    }
    case ParamType::kText:
      if (!std::holds_alternative<std::string>(value)) Refuse(spec, "a value that is no string");
      return;
    case ParamType::kTextList: {
      const auto* list = std::get_if<std::vector<std::string>>(&value);
      if (list == nullptr) Refuse(spec, "a value that is no list of strings");
      for (const std::string& s : *list) {
        if (s.empty()) Refuse(spec, "an empty string");
      }
      return;
    }
    case ParamType::kBool:
      if (!std::holds_alternative<bool>(value)) Refuse(spec, "a value that is no boolean");
      return;
    case ParamType::kSeed:
      if (!std::holds_alternative<uint64_t>(value) &&
          !std::holds_alternative<std::monostate>(value)) {
        Refuse(spec, "a value that is no integer");
      }
      return;
  }
  const bool below = spec.min && (spec.min_exclusive ? number <= *spec.min : number < *spec.min);
  const bool above = spec.max && (spec.max_exclusive ? number >= *spec.max : number > *spec.max);
  if (below || above) Refuse(spec, Shown(spec, value));
}

void SetParam(Settings& settings, const std::string& name, const ParamValue& value) {
  const ParamSpec& spec = FindParam(name);
  CheckParam(spec, value);
  spec.set(settings, value);
}

ParamValue ParseParamText(const ParamSpec& spec, const std::string& text) {
  const auto invalid = [&](const char* kind) {
    throw ParameterError(spec.name, std::string("invalid ") + kind + " value: '" + text + "'");
  };
  switch (spec.type) {
    case ParamType::kInt: {
      int64_t value = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size()) invalid("int");
      return value;
    }
    case ParamType::kSeed: {
      if (text == "random") return std::monostate{};
      uint64_t value = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size()) invalid("int");
      return value;
    }
    case ParamType::kFloatOrAuto:
      if (text == "auto") return std::monostate{};
      [[fallthrough]];
    case ParamType::kFloat: {
      // strtod, as Python's float() reads "1e3", "inf" and " 2" alike; the range check refuses
      // what is not finite.
      char* end = nullptr;
      const double value = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0') invalid("float");
      return value;
    }
    case ParamType::kTextList:
      return std::vector<std::string>{text};
    case ParamType::kBool:
      if (text == "true" || text == "True" || text == "1") return true;
      if (text == "false" || text == "False" || text == "0") return false;
      invalid("bool");
      break;
    case ParamType::kChoice:
    case ParamType::kText:
      return text;
  }
  return text;
}

std::string FormatParamValue(const ParamSpec& spec, const ParamValue& value) {
  if (const bool* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  if (const int64_t* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const uint64_t* u = std::get_if<uint64_t>(&value)) return std::to_string(*u);
  if (const double* d = std::get_if<double>(&value)) return Number(*d);
  if (const std::string* s = std::get_if<std::string>(&value)) return *s;
  if (const auto* list = std::get_if<std::vector<std::string>>(&value)) {
    std::string out = "[";
    for (size_t i = 0; i < list->size(); ++i) out += (i ? ", " : "") + Quoted((*list)[i]);
    return out + "]";
  }
  return spec.type == ParamType::kSeed ? "random" : "auto";
}

void CheckEngineOptions(const EngineOptions& options) {
  Settings settings;
  settings.engine = options;
  for (const ParamSpec& spec : ParamSpecs()) {
    if (spec.group == ParamGroup::kEngine) CheckParam(spec, spec.get(settings));
  }
}

RewardSpecOptions RewardOptionsOf(const Settings& settings) {
  RewardSpecOptions options;
  options.judge = settings.judge;
  options.kv_type = settings.engine.kv_type;
  options.kv_layout = settings.engine.kv_layout;
  options.policy_n_ctx = settings.engine.n_ctx;
  options.n_threads = settings.engine.n_threads;
  options.n_gpu_layers = settings.n_gpu_layers;
  return options;
}

uint64_t RandomSeed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) | device();
}

}  // namespace stars
