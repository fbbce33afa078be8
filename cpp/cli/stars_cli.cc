// stars-cli: STARS decoding from the command line with no Python, for edge boxes. It takes the
// flags of `stars-cpp generate` (minus python: rewards) and prints the same text, --json Result
// and --verbose trace (both written by stars/result_json.h, as in Python). `stars-cli bench`
// prints the edge numbers as one JSON object.
//
//   stars-cli generate PROMPT --model PATH [--reward SPEC] [flags...] [--json] [--verbose]
//   stars-cli bench --model PATH [--reward SPEC] [flags...]
//   stars-cli settings [flags...]   (each setting as the flags resolve it: name=value lines)
//
// Exit status: 0, 2 for bad arguments or a bad model file (one line on stderr), 1 otherwise.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "stars/engine.h"
#include "stars/errors.h"
#include "stars/json_writer.h"
#include "stars/log.h"
#include "stars/model.h"
#include "stars/param_spec.h"
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
  std::string model;
  stars::Settings settings;  // every flag of the spec that stars-cli takes (param_spec.h)
  bool raw = false, json = false;
  int verbose = 0;
};

std::string PythonName(std::string flag) {
  for (char& c : flag) {
    if (c == '-') c = '_';
  }
  return flag;
}

// The flags are the spec's entries that stars-cli takes, as --name or --name-with-dashes.
const stars::ParamSpec* NativeFlag(const std::string& name) {
  for (const stars::ParamSpec& spec : stars::ParamSpecs()) {
    if (spec.name == name && spec.TakenBy(stars::kNativeCli)) return &spec;
  }
  return nullptr;
}

Args Parse(int argc, char** argv, const std::vector<std::pair<std::string, std::string>>& preset) {
  Args args;
  if (argc < 2) throw UsageError("a command is required: generate or bench");
  args.command = argv[1];
  if (args.command != "generate" && args.command != "bench" && args.command != "settings") {
    throw UsageError("argument command: invalid choice: '" + args.command +
                     "' (choose from 'generate', 'bench', 'settings')");
  }
  std::map<std::string, std::string> values(preset.begin(), preset.end());  // by Python name
  std::vector<std::string> stop;
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
    const stars::ParamSpec* spec = NativeFlag(name);
    if (spec == nullptr && name != "model") throw UsageError("unrecognized arguments: " + arg);
    if (!has_value && spec != nullptr && spec->type == stars::ParamType::kBool) {
      value = "true";  // --logprobs alone, as in the Python CLI
    } else if (!has_value) {
      if (i + 1 >= argc) throw UsageError("argument --" + name + ": expected one argument");
      value = argv[++i];
    }
    if (name == "model") {
      args.model = value;
    } else if (spec->type == stars::ParamType::kTextList) {
      stop.push_back(value);  // repeatable
    } else {
      values[name] = value;
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
  if (args.model.empty() && args.command != "settings") {
    throw UsageError("the following arguments are required: --model (a GGUF path)");
  }
  for (const auto& [name, text] : values) {
    stars::ParamValue value;
    try {
      value = stars::ParseParamText(*NativeFlag(name), text);
    } catch (const stars::ParameterError& e) {
      throw UsageError("argument --" + name + ": " + e.what());  // as argparse words it
    }
    stars::SetParam(args.settings, name, value);
  }
  if (!stop.empty()) stars::SetParam(args.settings, "stop", stop);
  return args;
}

struct Loaded {
  std::shared_ptr<stars::Model> model;
  std::unique_ptr<stars::Engine> engine;
  double load_seconds = 0.0;
};

Loaded Load(const Args& args) {
  const auto start = std::chrono::steady_clock::now();
  const stars::Settings& settings = args.settings;
  Loaded loaded;
  loaded.model = stars::Model::Load(args.model, settings.n_gpu_layers);
  // Plain mode needs no reward: the default one is built only for best_of_n and stars.
  const bool none = settings.reward == "none" || (settings.params.mode == stars::Mode::kPlain &&
                                                  settings.reward == stars::Settings{}.reward);
  std::shared_ptr<stars::Reward> reward;
  if (!none) {
    reward = stars::MakeReward(settings.reward, loaded.model, stars::RewardOptionsOf(settings));
  }
  loaded.engine = std::make_unique<stars::Engine>(loaded.model, reward, settings.engine);
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
  const stars::GenerationParams& params = args.settings.params;
  Loaded loaded = Load(args);
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
  const stars::GenerationParams& params = args.settings.params;
  Loaded loaded = Load(args);
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
      {MakePrompt(args, "Give me three tips for staying focused while studying.")}, params, hooks);
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

// Every setting stars-cli takes, as its flags (and the defaults) resolve it.
int PrintSettings(const Args& args) {
  for (const stars::ParamSpec& spec : stars::ParamSpecs()) {
    if (spec.TakenBy(stars::kNativeCli)) {
      std::cout << spec.name << "=" << stars::FormatParamValue(spec, spec.get(args.settings))
                << "\n";
    }
  }
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
    // bench answers a fixed instruction in 64 tokens, seed 0, unless the flags say otherwise.
    const bool bench = argc > 1 && std::string(argv[1]) == "bench";
    const Args args = Parse(
        argc, argv,
        bench
            ? std::vector<std::pair<std::string, std::string>>{{"max_tokens", "64"}, {"seed", "0"}}
            : std::vector<std::pair<std::string, std::string>>{});
    if (args.command == "settings") return PrintSettings(args);
    return args.command == "bench" ? Bench(args) : Generate(args);
  } catch (const std::exception& e) {
    // The exit status is the error table's (stars/errors.h), as in the Python CLI.
    std::cerr << "stars-cli: error: " << FirstLine(e.what()) << "\n";
    return dynamic_cast<const UsageError*>(&e) != nullptr ? 2 : stars::ClassifyError(e).exit_code;
  }
}
