// The nanobind module stars_cpp._core: registration only. What it translates beyond nanobind's
// casters lives in glue.h, the exceptions in exceptions.h, and the submodule
// stars_cpp._core.testing in testing.h. Heavy calls run with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "exceptions.h"
#include "glue.h"
#include "probe.h"
#include "stars/engine.h"
#include "stars/log.h"
#include "stars/model.h"
#include "stars/param_spec.h"
#include "stars/params.h"
#include "stars/result.h"
#include "stars/result_json.h"
#include "stars/reward.h"
#include "stars/rewards.h"
#include "stars/runtime.h"
#include "testing.h"

namespace nb = nanobind;
using namespace nb::literals;
using stars::python::BorrowModel;
using stars::python::EngineSlots;
using stars::python::ErrorTable;
using stars::python::FromParamValue;
using stars::python::Groups;
using stars::python::MakeCallbackSink;
using stars::python::MetricsDict;
using stars::python::ParamsDict;
using stars::python::ParamsTable;
using stars::python::PythonHooks;
using stars::python::RegisterExceptions;
using stars::python::RegisterProbe;
using stars::python::RegisterTesting;
using stars::python::ToPrompt;
using stars::python::ToPrompts;
using stars::python::ToReward;
using stars::python::ToSettings;
using stars::python::Utf8;

NB_MODULE(_core, m) {
  m.doc() = "stars_cpp native core: STARS decoding over llama.cpp.";
  RegisterExceptions();
  nb::module_ testing = m.def_submodule(
      "testing", "KvSession and the batched reward protocol, for tests and benchmarks.");
  RegisterTesting(testing);
  m.attr("max_parallel_sequences") = stars::MaxSequences();
  // What a KV-cached reward's context adds to the policy's n_ctx for its template.
  m.attr("reward_template_room") = stars::kTemplateRoom;
  m.def("live_contexts", &stars::LiveContexts,
        "llama.cpp contexts alive in the process (policy and reward contexts alike).");
  m.def("join_abandoned_engines", &stars::JoinAbandonedEngines,
        nb::call_guard<nb::gil_scoped_release>(),
        "Wait for the loop threads of Engines dropped on their own loop thread (at exit).");

  // llama.cpp's log, for stars_cpp/llama_log.py, which feeds it to Python's logging.
  m.def("install_log", &stars::InstallLog, "threshold"_a,
        "Route llama.cpp's log into a queue, once per process; keep lines at threshold or above.");
  m.def("set_log_threshold", &stars::SetLogThreshold, "threshold"_a);
  m.def("wake_log_readers", &stars::WakeLogReaders);
  m.def(
      "take_log_lines",
      [](double timeout_s) {
        std::vector<stars::LogLine> lines;
        size_t dropped = 0;
        {
          nb::gil_scoped_release release;
          const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
          lines = stars::TakeLogLines(timeout, &dropped);
        }
        nb::list out;
        for (const stars::LogLine& line : lines) {
          out.append(nb::make_tuple(static_cast<int>(line.level), Utf8(line.text)));
        }
        return nb::make_tuple(out, dropped);
      },
      "timeout_s"_a, "Wait up to timeout_s for queued lines: ([(level, text)], dropped count).");

  nb::class_<stars::Model>(m, "Model", "A llama.cpp model, loaded from a GGUF or borrowed.")
      .def_static(
          "load",
          [](const std::string& path, int32_t n_gpu_layers) {
            nb::gil_scoped_release release;
            return stars::Model::Load(path, n_gpu_layers);
          },
          "path"_a, "n_gpu_layers"_a)
      .def_static("borrow", &BorrowModel, "address"_a, "owner"_a, "description"_a, "n_gpu_layers"_a,
                  "path"_a = "")
      .def_prop_ro("path", &stars::Model::path)
      .def_prop_ro("architecture", &stars::Model::architecture)
      .def_prop_ro("n_layer", &stars::Model::n_layer)
      .def_prop_ro("description", &stars::Model::description)
      .def_prop_ro("owned", &stars::Model::owned)
      .def_prop_ro("n_vocab", &stars::Model::n_vocab)
      .def_prop_ro("n_embd", &stars::Model::n_embd)
      .def_prop_ro("classifier_labels",
                   [](const stars::Model& model) {
                     std::vector<std::string> labels;
                     for (int32_t i = 0; i < model.n_cls_out(); ++i) {
                       labels.push_back(model.ClassifierLabel(i));
                     }
                     return labels;
                   })
      .def(
          "tokenize",
          [](const stars::Model& model, const std::string& text, bool add_special,
             bool parse_special) { return model.Tokenize(text, add_special, parse_special); },
          "text"_a, "add_special"_a = true, "parse_special"_a = false)
      .def(
          "detokenize",
          [](const stars::Model& model, const std::vector<int32_t>& tokens) {
            return Utf8(model.Detokenize(tokens));
          },
          "tokens"_a)
      .def(
          "apply_chat_template",
          [](const stars::Model& model,
             const std::vector<std::pair<std::string, std::string>>& messages) {
            std::vector<stars::ChatMessage> chat;
            for (const auto& [role, content] : messages) chat.push_back({role, content});
            return Utf8(model.ApplyChatTemplate(chat));
          },
          "messages"_a);

  // Every setting, declared once in C++ (param_spec.h): the Python front ends are generated from
  // it. The binding declares no defaults of its own.
  m.attr("PARAMS") = ParamsTable();
  m.attr("ERROR_CLASSES") = ErrorTable();
  m.def(
      "check_settings",
      [](const nb::dict& values, const std::vector<std::string>& groups) {
        ToSettings(values, Groups(groups));
      },
      "values"_a, "groups"_a,
      "Checks settings of the named groups; ParameterError naming a bad or unknown one.");
  m.def(
      "parse_param_text",
      [](const std::string& name, const std::string& text) {
        const stars::ParamSpec& spec = stars::FindParam(name);
        return FromParamValue(stars::ParseParamText(spec, text), spec.type);
      },
      "name"_a, "text"_a, "A setting's value from command-line text, as stars-cli reads it.");
  nb::class_<stars::GenerationParams>(m, "GenerationParams",
                                      "A request's generation parameters, validated.")
      .def_static(
          "make",
          [](const nb::dict& values) {
            return ToSettings(values, {stars::ParamGroup::kGeneration}).params;
          },
          "values"_a, "From {name: value} on top of the defaults; ParameterError naming a bad one.")
      .def("to_dict", &ParamsDict, "{name: value}, 'auto' and None (random seed) included.");

  nb::class_<stars::TokenLogprob>(m, "TokenLogprob",
                                  "A token's log-probability under the policy (logprobs=True).")
      .def_ro("token", &stars::TokenLogprob::token)
      .def_prop_ro("text", [](const stars::TokenLogprob& t) { return Utf8(t.text); })
      .def_prop_ro(
          "bytes",
          [](const stars::TokenLogprob& t) { return nb::bytes(t.text.data(), t.text.size()); })
      .def_ro("logprob", &stars::TokenLogprob::logprob)
      .def_ro("top_logprobs", &stars::TokenLogprob::top);

  nb::class_<stars::Segment>(m, "Segment")
      .def_prop_ro("text", [](const stars::Segment& s) { return Utf8(s.text); })
      .def_ro("tokens", &stars::Segment::tokens)
      .def_ro("logprobs", &stars::Segment::logprobs)
      .def_ro("attempts", &stars::Segment::attempts)
      .def_ro("rewards", &stars::Segment::rewards)
      .def_ro("reward", &stars::Segment::reward)
      .def_ro("threshold", &stars::Segment::threshold)
      .def_ro("fallback", &stars::Segment::fallback);

  nb::class_<stars::Stats>(m, "Stats")
      .def_ro("policy_tokens_sampled", &stars::Stats::policy_tokens_sampled)
      .def_ro("tokens_accepted", &stars::Stats::tokens_accepted)
      .def_ro("tokens_wasted", &stars::Stats::tokens_wasted)
      .def_ro("prompt_tokens", &stars::Stats::prompt_tokens)
      .def_ro("policy_tokens_decoded", &stars::Stats::policy_tokens_decoded)
      .def_ro("reward_calls", &stars::Stats::reward_calls)
      .def_ro("reward_rows", &stars::Stats::reward_rows)
      .def_ro("reward_tokens_decoded", &stars::Stats::reward_tokens_decoded)
      .def_ro("reward_rows_truncated", &stars::Stats::reward_rows_truncated)
      .def_ro("rounds", &stars::Stats::rounds)
      .def_ro("mean_round_width", &stars::Stats::mean_round_width)
      .def_ro("backend_tokens_sampled", &stars::Stats::backend_tokens_sampled)
      .def_ro("sampling_fallback", &stars::Stats::sampling_fallback)
      .def_ro("seconds_policy", &stars::Stats::seconds_policy)
      .def_ro("seconds_reward", &stars::Stats::seconds_reward)
      .def_ro("seconds_total", &stars::Stats::seconds_total);

  nb::class_<stars::Result>(m, "Result")
      .def_prop_ro("text", [](const stars::Result& r) { return Utf8(r.text); })
      .def_ro("tokens", &stars::Result::tokens)
      .def_ro("logprobs", &stars::Result::logprobs)
      .def_prop_ro("finish_reason",
                   [](const stars::Result& r) { return stars::FinishReasonName(r.finish_reason); })
      .def_ro("reward", &stars::Result::reward)
      .def_ro("segments", &stars::Result::segments)
      .def_ro("stats", &stars::Result::stats)
      .def("to_json", &stars::ResultJson, "indent"_a = 2,
           "The Result as JSON text (ASCII), as stars-cli --json prints it; indent 0: one line.")
      .def(
          "trace", [](const stars::Result& r) { return Utf8(stars::ResultTrace(r)); },
          "The --verbose trace: a line per segment, the stats and the finish reason.");

  nb::list stats_fields;
  for (const std::string& name : stars::StatsFieldNames()) stats_fields.append(name);
  m.attr("STATS_FIELDS") = nb::tuple(stats_fields);

  nb::class_<stars::Reward>(m, "Reward", "A native batched reward (one per Engine).");

  nb::class_<stars::GgufReward, stars::Reward>(m, "GgufReward", "A reward read off a GGUF model.")
      .def("score_texts", &stars::GgufReward::ScoreTexts, "prompts"_a, "responses"_a,
           nb::call_guard<nb::gil_scoped_release>())
      .def("input_tokens", &stars::GgufReward::InputTokens, "prompt"_a, "response"_a);

  nb::class_<stars::ClassifierReward, stars::GgufReward>(m, "ClassifierReward",
                                                         "A sequence classifier or reranker.")
      .def_prop_ro("pair", &stars::ClassifierReward::pair);

  nb::class_<stars::KvCachedReward, stars::GgufReward>(
      m, "KvCachedReward", "A reward read off a causal model, KV-cached per prompt.")
      .def("score_policy_tokens", &stars::KvCachedReward::ScorePolicyTokens, "prompt"_a, "tokens"_a,
           nb::call_guard<nb::gil_scoped_release>())
      .def_prop_ro("shares_vocabulary", &stars::KvCachedReward::shares_vocabulary)
      .def("n_prefix_tokens", &stars::KvCachedReward::n_prefix_tokens, "prompt"_a)
      .def_prop_ro("n_suffix_tokens", &stars::KvCachedReward::n_suffix_tokens)
      .def(
          "render",
          [](const stars::KvCachedReward& reward, const std::string& prompt,
             const std::string& response) { return Utf8(reward.RenderText(prompt, response)); },
          "prompt"_a, "response"_a);

  m.def(
      "make_classifier_reward",
      [](std::shared_ptr<stars::Model> model, std::vector<int32_t> labels, int32_t pair,
         int32_t n_ctx, int32_t n_threads, const std::string& kv_layout) {
        stars::ClassifierOptions options;
        options.labels = std::move(labels);
        options.pair = pair;
        options.n_ctx = n_ctx;
        options.n_threads = n_threads;
        options.kv_layout = stars::ParseKvLayout(kv_layout);
        return stars::MakeClassifierReward(std::move(model), options);
      },
      "model"_a, "labels"_a, "pair"_a, "n_ctx"_a, "n_threads"_a, "kv_layout"_a);
  m.def(
      "make_judge_reward",
      [](std::shared_ptr<stars::Model> judge, std::shared_ptr<stars::Model> policy,
         const std::string& question, const std::string& yes, const std::string& no, int32_t n_ctx,
         int32_t n_threads, const std::string& layout, const std::string& kv_type,
         const std::string& kv_layout) {
        stars::JudgeOptions options;
        options.kv_layout = stars::ParseKvLayout(kv_layout);
        options.question = question;
        options.layout = stars::ParseJudgeLayout(layout);
        options.yes = yes;
        options.no = no;
        options.n_ctx = n_ctx;
        options.n_threads = n_threads;
        options.kv_type = stars::ParseKvType(kv_type);
        return stars::MakeJudgeReward(std::move(judge), policy, options);
      },
      "judge"_a, "policy"_a.none(), "question"_a, "yes"_a, "no"_a, "n_ctx"_a, "n_threads"_a,
      "layout"_a, "kv_type"_a, "kv_layout"_a);
  m.def(
      "make_causal_reward",
      [](std::shared_ptr<stars::Model> model, const std::string& path,
         std::shared_ptr<stars::Model> policy, const std::string& input_template, int32_t n_ctx,
         int32_t n_threads, const std::string& kv_type, const std::string& kv_layout) {
        stars::CausalOptions options;
        options.kv_layout = stars::ParseKvLayout(kv_layout);
        options.input_template = input_template;
        options.kv_type = stars::ParseKvType(kv_type);
        options.n_ctx = n_ctx;
        options.n_threads = n_threads;
        return stars::MakeCausalReward(std::move(model), path, policy, options);
      },
      "model"_a, "path"_a, "policy"_a.none(), "template"_a, "n_ctx"_a, "n_threads"_a, "kv_type"_a,
      "kv_layout"_a);
  m.def(
      "make_reward",
      [](std::shared_ptr<stars::Model> policy, const nb::dict& settings) {
        const stars::Settings parsed =
            ToSettings(settings, {stars::ParamGroup::kEngine, stars::ParamGroup::kReward});
        nb::gil_scoped_release release;
        return stars::MakeReward(parsed.reward, policy, stars::RewardOptionsOf(parsed));
      },
      "policy"_a, "settings"_a,
      "The GGUF reward a spec names (settings['reward']), as stars-cli builds it.");
  RegisterProbe(m);

  nb::class_<stars::Engine>(m, "Engine", "Plain, best-of-N and STARS decoding on one model.",
                            nb::type_slots(EngineSlots()))
      .def(
          "__init__",
          [](stars::Engine* self, std::shared_ptr<stars::Model> model, nb::object reward,
             const nb::dict& options) {
            const stars::Settings settings = ToSettings(options, {stars::ParamGroup::kEngine});
            new (self)
                stars::Engine(std::move(model), ToReward(std::move(reward)), settings.engine);
          },
          "model"_a, "reward"_a.none(), "options"_a)
      .def_prop_ro("has_reward", &stars::Engine::has_reward)
      .def_prop_ro("n_ctx", &stars::Engine::n_ctx)
      .def(
          "generate",
          [](stars::Engine& engine, const nb::list& items, const stars::GenerationParams& params,
             nb::object on_segment, nb::object keys) {
            const std::vector<stars::Prompt> prompts = ToPrompts(items, keys);
            const stars::GenerateHooks hooks = PythonHooks(on_segment);
            nb::gil_scoped_release release;
            return engine.Generate(prompts, params, hooks);
          },
          "prompts"_a, "params"_a, "on_segment"_a.none() = nb::none(), "keys"_a.none() = nb::none())
      .def(
          "submit",
          [](stars::Engine& engine, nb::handle item, const stars::GenerationParams& params,
             std::optional<std::string> key, uint64_t occurrence, nb::object on_segment,
             nb::object on_result, nb::object on_error) {
            stars::Prompt prompt = ToPrompt(item);
            prompt.key = std::move(key);
            prompt.occurrence = occurrence;
            auto sink =
                MakeCallbackSink(std::move(on_segment), std::move(on_result), std::move(on_error));
            nb::gil_scoped_release release;
            return engine.Submit(prompt, params, std::move(sink));
          },
          "prompt"_a, "params"_a, "key"_a.none(), "occurrence"_a, "on_segment"_a.none(),
          "on_result"_a, "on_error"_a)
      .def("cancel", &stars::Engine::Cancel, "request_id"_a,
           nb::call_guard<nb::gil_scoped_release>())
      .def("close", &stars::Engine::Close, nb::call_guard<nb::gil_scoped_release>())
      .def("metrics", [](const stars::Engine& engine) { return MetricsDict(engine.Metrics()); });
}
