// stars-cli: STARS decoding from the command line with no Python, for edge boxes. It takes the
// flags of `stars-cpp generate` (minus python: rewards) and prints the same text, --json Result
// and --verbose trace (both written by stars/result_json.h, as in Python). `stars-cli bench`
// prints the edge numbers as one JSON object.
//
//   stars-cli generate PROMPT --model PATH [--reward SPEC] [flags...] [--json] [--verbose]
//   stars-cli bench --model PATH [--reward SPEC] [flags...]
//
// Exit status: 0, 2 for bad arguments or a bad model file (one line on stderr), 1 otherwise.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "stars/engine.h"
#include "stars/errors.h"
#include "stars/json_writer.h"
#include "stars/log.h"
#include "stars/model.h"
#include "stars/params.h"
#include "stars/result.h"
#include "stars/result_json.h"
#include "stars/rewards.h"

namespace {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string command;
  std::string prompt;
  std::map<std::string, std::string> values;  // by Python name
  std::vector<std::string> stop;
  bool raw = false, json = false;
  int verbose = 0;
};

// Flags that take a value, by their Python names; both spellings are accepted
// (--segment-tokens and --segment_tokens), as in the Python CLI.
const char* const kValueFlags[] = {
    "model",       "reward",       "judge_question", "judge_yes", "judge_no", "judge_layout",
    "n_ctx",       "n_gpu_layers", "n_threads",      "kv_type",   "mode",     "segment_tokens",
    "candidates",  "max_attempts", "max_tokens",     "top_k",     "alpha",    "target_attempts",
    "temperature", "top_p",        "min_p",          "threshold", "beta",     "acceptance",
    "width",       "seed",         "typical_p",      "sampling",  "kv_layout"};

std::string PythonName(std::string flag) {
  for (char& c : flag) {
    if (c == '-') c = '_';
  }
  return flag;
}

Args Parse(int argc, char** argv) {
  Args args;
  if (argc < 2) throw UsageError("a command is required: generate or bench");
  args.command = argv[1];
  if (args.command != "generate" && args.command != "bench") {
    throw UsageError("argument command: invalid choice: '" + args.command +
                     "' (choose from 'generate', 'bench')");
  }
  std::vector<std::string> positional;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-v" || arg == "--verbose") {
      ++args.verbose;
      continue;
    }
    if (arg == "-vv") {
      args.verbose += 2;
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    name = PythonName(name);
    if (name == "raw" || name == "json") {
      if (has_value) throw UsageError("argument --" + name + ": ignored explicit argument");
      (name == "raw" ? args.raw : args.json) = true;
      continue;
    }
    bool known = name == "stop";
    for (const char* flag : kValueFlags) known = known || name == flag;
    if (!known) throw UsageError("unrecognized arguments: " + arg);
    if (!has_value) {
      if (i + 1 >= argc) throw UsageError("argument --" + name + ": expected one argument");
      value = argv[++i];
    }
    if (name == "stop") {
      args.stop.push_back(value);
    } else {
      args.values[name] = value;
    }
  }
  if (args.command == "generate") {
    if (positional.size() != 1) {
      throw UsageError(positional.empty() ? "the following arguments are required: prompt"
                                          : "unrecognized arguments: " + positional[1]);
    }
    args.prompt = positional[0];
  } else if (!positional.empty()) {
    throw UsageError("unrecognized arguments: " + positional[0]);
  }
  if (!args.values.count("model")) {
    throw UsageError("the following arguments are required: --model (a GGUF path)");
  }
  return args;
}

int64_t Int(const Args& args, const std::string& name, int64_t fallback) {
  const auto it = args.values.find(name);
  if (it == args.values.end()) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || errno != 0 || value < INT32_MIN || value > INT32_MAX) {
    throw UsageError("argument --" + name + ": invalid int value: '" + it->second + "'");
  }
  return value;
}

double Float(const std::string& name, const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') {
    throw UsageError("argument --" + name + ": invalid float value: '" + text + "'");
  }
  return value;
}

double Float(const Args& args, const std::string& name, double fallback) {
  const auto it = args.values.find(name);
  return it == args.values.end() ? fallback : Float(name, it->second);
}

std::optional<double> FloatOrAuto(const Args& args, const std::string& name) {
  const auto it = args.values.find(name);
  if (it == args.values.end() || it->second == "auto") return std::nullopt;
  return Float(name, it->second);
}

std::string Str(const Args& args, const std::string& name, const std::string& fallback = "") {
  const auto it = args.values.find(name);
  return it == args.values.end() ? fallback : it->second;
}

// The parameters' defaults are GenerationParams' own, the same as the Python package's.
stars::GenerationParams Params(const Args& args) {
  stars::GenerationParams params;
  params.mode = stars::ParseMode(Str(args, "mode", "stars"));
  params.segment_tokens = static_cast<int32_t>(Int(args, "segment_tokens", params.segment_tokens));
  params.candidates = static_cast<int32_t>(Int(args, "candidates", params.candidates));
  params.max_attempts = static_cast<int32_t>(Int(args, "max_attempts", params.max_attempts));
  params.max_tokens = static_cast<int32_t>(Int(args, "max_tokens", params.max_tokens));
  params.sampling.top_k = static_cast<int32_t>(Int(args, "top_k", params.sampling.top_k));
  params.alpha = Float(args, "alpha", params.alpha);
  params.target_attempts = Float(args, "target_attempts", params.target_attempts);
  params.sampling.temperature =
      static_cast<float>(Float(args, "temperature", params.sampling.temperature));
  params.sampling.top_p = static_cast<float>(Float(args, "top_p", params.sampling.top_p));
  params.sampling.min_p = static_cast<float>(Float(args, "min_p", params.sampling.min_p));
  params.sampling.typical_p =
      static_cast<float>(Float(args, "typical_p", params.sampling.typical_p));
  params.threshold = FloatOrAuto(args, "threshold");
  params.beta = FloatOrAuto(args, "beta");
  params.acceptance = stars::ParseAcceptance(Str(args, "acceptance", "soft"));
  params.width = stars::ParseWidth(Str(args, "width", "adaptive"));
  params.stop = args.stop;
  if (args.values.count("seed")) {
    const std::string& text = args.values.at("seed");
    char* end = nullptr;
    errno = 0;
    params.seed = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || text[0] == '-' || *end != '\0' || errno != 0) {
      throw UsageError("argument --seed: invalid int value: '" + text + "'");
    }
  } else {
    std::random_device device;
    params.seed = (static_cast<uint64_t>(device()) << 32) | device();
  }
  return params;
}

struct Loaded {
  std::shared_ptr<stars::Model> model;
  std::unique_ptr<stars::Engine> engine;
  double load_seconds = 0.0;
};

Loaded Load(const Args& args, stars::Mode mode) {
  const auto start = std::chrono::steady_clock::now();
  Loaded loaded;
  const int32_t n_ctx = static_cast<int32_t>(Int(args, "n_ctx", 4096));
  const int32_t n_gpu_layers = static_cast<int32_t>(Int(args, "n_gpu_layers", 0));
  const int32_t n_threads = static_cast<int32_t>(Int(args, "n_threads", 0));
  const std::string kv_type = Str(args, "kv_type", "f16");
  loaded.model = stars::Model::Load(args.values.at("model"), n_gpu_layers);
  std::string spec = Str(args, "reward", mode == stars::Mode::kPlain ? "none" : "judge:policy");
  stars::RewardSpecOptions options;
  options.question = Str(args, "judge_question");
  options.yes = Str(args, "judge_yes");
  options.no = Str(args, "judge_no");
  options.layout = Str(args, "judge_layout");
  options.kv_type = stars::ParseKvType(kv_type);
  options.kv_layout = stars::ParseKvLayout(Str(args, "kv_layout", "isolated"));
  options.policy_n_ctx = n_ctx;
  options.n_threads = n_threads;
  options.n_gpu_layers = n_gpu_layers;
  std::shared_ptr<stars::Reward> reward;
  if (spec == "none") {
    if (!options.question.empty() || !options.yes.empty() || !options.no.empty() ||
        !options.layout.empty()) {
      throw UsageError("--judge-* flags need a judge reward (--reward judge:PATH|policy)");
    }
  } else {
    reward = stars::MakeReward(spec, loaded.model, options);
  }
  stars::EngineOptions engine;
  engine.n_ctx = n_ctx;
  engine.n_threads = n_threads;
  engine.kv_type = options.kv_type;
  engine.kv_layout = options.kv_layout;
  engine.sampling = stars::ParseSampling(Str(args, "sampling", "auto"));
  loaded.engine = std::make_unique<stars::Engine>(loaded.model, reward, engine);
  loaded.load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return loaded;
}

stars::Prompt MakePrompt(const Args& args, const std::string& text) {
  stars::Prompt prompt;
  if (args.raw) {
    prompt.text = text;
  } else {
    prompt.roles = {"user"};
    prompt.contents = {text};
  }
  return prompt;
}

int Generate(const Args& args) {
  const stars::GenerationParams params = Params(args);
  Loaded loaded = Load(args, params.mode);
  const std::vector<stars::Result> results =
      loaded.engine->Generate({MakePrompt(args, args.prompt)}, params, {});
  const stars::Result& result = results.at(0);
  if (args.verbose >= 1) std::cerr << stars::ResultTrace(result);
  if (args.json) {
    std::cout << stars::ResultJson(result) << "\n";
  } else {
    std::cout << result.text << "\n";
  }
  return 0;
}

double PeakRssMib() {
  struct rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux: KiB
}

// The edge numbers, for bench/edge.py: one STARS response to a fixed instruction.
int Bench(const Args& args) {
  Args with_defaults = args;
  with_defaults.values.emplace("max_tokens", "64");
  with_defaults.values.emplace("seed", "0");
  const stars::GenerationParams params = Params(with_defaults);
  Loaded loaded = Load(with_defaults, params.mode);
  const auto start = std::chrono::steady_clock::now();
  double first_segment = -1.0;
  stars::GenerateHooks hooks;
  hooks.on_segment = [&](int32_t, const stars::Segment&) {
    if (first_segment < 0) {
      first_segment =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  };
  const auto results = loaded.engine->Generate(
      {MakePrompt(with_defaults, "Give me three tips for staying focused while studying.")}, params,
      hooks);
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const stars::Stats& stats = results.at(0).stats;
  stars::JsonWriter out;
  out.BeginObject();
  out.Key("build").String("stars-cli");
  out.Key("peak_rss_mib").Number(PeakRssMib());
  out.Key("load_s").Number(loaded.load_seconds);
  out.Key("first_segment_s").Number(first_segment);
  out.Key("ms_per_accepted_token")
      .Number(1000.0 * total / std::max<int64_t>(1, stats.tokens_accepted));
  out.Key("policy_tokens_per_s")
      .Number(stats.seconds_policy > 0 ? stats.policy_tokens_sampled / stats.seconds_policy : 0.0);
  out.Key("reward_ms_per_candidate")
      .Number(stats.reward_rows > 0 ? 1000.0 * stats.seconds_reward / stats.reward_rows : 0.0);
  out.Key("accepted_tokens").Int(stats.tokens_accepted);
  out.EndObject();
  std::cout << out.text() << "\n";
  return 0;
}

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

// llama.cpp's log on stderr: warnings and errors, or everything with -vv (as the Python CLI).
class LogPrinter {
 public:
  explicit LogPrinter(int verbose) {
    stars::InstallLog(verbose >= 2 ? static_cast<int>(stars::LogLevel::kDebug)
                                   : static_cast<int>(stars::LogLevel::kWarning));
    thread_ = std::thread([this] {
      while (!stop_) Print(std::chrono::milliseconds(100));
    });
  }
  ~LogPrinter() {
    stop_ = true;
    stars::WakeLogReaders();
    thread_.join();
    Print(std::chrono::milliseconds(0));
  }

 private:
  static void Print(std::chrono::milliseconds timeout) {
    size_t dropped = 0;
    for (const stars::LogLine& line : stars::TakeLogLines(timeout, &dropped)) {
      std::cerr << line.text << "\n";
    }
  }
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int Verbosity(int argc, char** argv) {
  int verbose = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    verbose += arg == "-v" || arg == "--verbose" ? 1 : arg == "-vv" ? 2 : 0;
  }
  return verbose;
}

}  // namespace

int main(int argc, char** argv) {
  LogPrinter log(Verbosity(argc, argv));
  try {
    const Args args = Parse(argc, argv);
    return args.command == "bench" ? Bench(args) : Generate(args);
  } catch (const std::exception& e) {
    // Bad input (arguments, a missing or bad file, a prompt too long) exits 2, as in Python.
    const bool bad_input = dynamic_cast<const UsageError*>(&e) != nullptr ||
                           dynamic_cast<const stars::ParameterError*>(&e) != nullptr ||
                           dynamic_cast<const stars::ModelLoadError*>(&e) != nullptr ||
                           dynamic_cast<const stars::ContextLengthError*>(&e) != nullptr ||
                           dynamic_cast<const stars::ChatTemplateError*>(&e) != nullptr;
    std::cerr << "stars-cli: error: " << FirstLine(e.what()) << "\n";
    return bad_input ? 2 : 1;
  }
}
