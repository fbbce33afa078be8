// The nanobind module stars_cpp._core: translation between Python and the C++ core only.
// Exceptions are defined in stars_cpp/errors.py and mapped in one place (RegisterExceptions); heavy
// calls run with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llama/batch.h"
#include "llama/context.h"
#include "llama/sequence_pool.h"
#include "llama/tokenizer.h"
#include "reward/causal_reward.h"
#include "reward/classifier_reward.h"
#include "reward/judge_reward.h"
#include "stars/engine.h"
#include "stars/errors.h"
#include "stars/log.h"
#include "stars/model.h"
#include "stars/params.h"
#include "stars/result.h"
#include "stars/reward.h"
#include "stars/rewards.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

// Model text may end inside a UTF-8 character (a segment boundary); never fail on it.
nb::str Utf8(std::string_view text) {
  PyObject* str =
      PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace");
  if (str == nullptr) throw nb::python_error();
  return nb::steal<nb::str>(str);
}

// ---------------------------------------------------------------------------------------------
// Exceptions: every C++ error type maps to one Python class. The classes are defined once, in
// stars_cpp/errors.py, and looked up here by name at import.

struct PythonExceptions {
  PyObject* error = nullptr;
  PyObject* model_load = nullptr;
  PyObject* model_not_found = nullptr;
  PyObject* context_length = nullptr;
  PyObject* decode = nullptr;
  PyObject* parameter = nullptr;
  PyObject* chat_template = nullptr;
  PyObject* reward = nullptr;
  PyObject* reentrant_call = nullptr;
  PyObject* queue_full = nullptr;
  PyObject* engine_closed = nullptr;
};
PythonExceptions exceptions;

// Every C++ error type to its Python class; anything else is left to nanobind.
void TranslateException(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const stars::ModelNotFoundError& e) {
    PyErr_SetString(exceptions.model_not_found, e.what());
  } catch (const stars::ModelLoadError& e) {
    PyErr_SetString(exceptions.model_load, e.what());
  } catch (const stars::ContextLengthError& e) {
    PyErr_SetString(exceptions.context_length, e.what());
  } catch (const stars::DecodeError& e) {
    PyErr_SetString(exceptions.decode, e.what());
  } catch (const stars::ParameterError& e) {
    PyErr_SetString(exceptions.parameter, e.what());
  } catch (const stars::ChatTemplateError& e) {
    PyErr_SetString(exceptions.chat_template, e.what());
  } catch (const stars::RewardError& e) {
    PyErr_SetString(exceptions.reward, e.what());
  } catch (const stars::ReentrantCallError& e) {
    PyErr_SetString(exceptions.reentrant_call, e.what());
  } catch (const stars::QueueFullError& e) {
    PyErr_SetString(exceptions.queue_full, e.what());
  } catch (const stars::EngineClosedError& e) {
    PyErr_SetString(exceptions.engine_closed, e.what());
  } catch (const stars::Error& e) {
    PyErr_SetString(exceptions.error, e.what());
  }
}

void RegisterExceptions() {
  nb::module_ errors = nb::module_::import_("stars_cpp.errors");
  // The module keeps the classes alive for the process; these are borrowed from it.
  auto get = [&](const char* name) {
    nb::object type = errors.attr(name);
    if (!PyType_Check(type.ptr()) ||
        !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(type.ptr()),
                          reinterpret_cast<PyTypeObject*>(PyExc_Exception)))
      throw nb::type_error(
          (std::string("stars_cpp.errors.") + name + " is not an exception class").c_str());
    type.inc_ref();
    return type.ptr();
  };
  exceptions.error = get("StarsError");
  exceptions.model_load = get("ModelLoadError");
  exceptions.model_not_found = get("ModelNotFoundError");
  exceptions.context_length = get("ContextLengthError");
  exceptions.decode = get("DecodeError");
  exceptions.parameter = get("ParameterError");
  exceptions.chat_template = get("ChatTemplateError");
  exceptions.reward = get("RewardError");
  exceptions.reentrant_call = get("ReentrantCallError");
  exceptions.queue_full = get("QueueFullError");
  exceptions.engine_closed = get("EngineClosedError");
  nb::register_exception_translator(TranslateException);
}

// The Python exception object for `p` (under the GIL): a stars error as its class, a Python
// exception as itself. For outcomes handed to a callback on another thread than they rose on.
nb::object PythonError(const std::exception_ptr& p) {
  try {
    TranslateException(p, nullptr);
  } catch (nb::python_error& e) {
    e.restore();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
  }
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  if (traceback != nullptr) PyException_SetTraceback(value, traceback);
  Py_XDECREF(type);
  Py_XDECREF(traceback);
  return nb::steal(value);
}

// ---------------------------------------------------------------------------------------------
// A Python callable fn(prompts, responses) -> sequence of floats, as a batched reward.

class CallableReward : public stars::Reward {
 public:
  explicit CallableReward(nb::object fn) : fn_(std::move(fn)) {}

  ~CallableReward() override {
    nb::gil_scoped_acquire gil;
    fn_.reset();
    prompts_.reset();
  }

  void Begin(int32_t prompt, std::string_view text) override {
    nb::gil_scoped_acquire gil;
    prompts_[nb::int_(prompt)] = Utf8(std::string(text));
  }

  void Finish(int32_t prompt) override {
    nb::gil_scoped_acquire gil;
    nb::int_ key(prompt);
    if (prompts_.contains(key)) nb::del(prompts_[key]);
  }

  // The callable, for the garbage collector: it may reference the Engine that owns this.
  nb::handle fn() const { return fn_; }
  void Clear() { fn_ = nb::none(); }

  void Score(const std::vector<stars::RewardRow>& rows, std::vector<double>* scores) override {
    nb::gil_scoped_acquire gil;
    nb::list prompts;
    nb::list responses;
    for (const stars::RewardRow& row : rows) {
      prompts.append(prompts_[nb::int_(row.prompt)]);
      responses.append(Utf8(row.ResponseText()));
    }
    nb::object values = fn_(prompts, responses);
    scores->clear();
    try {
      for (nb::handle value : values) scores->push_back(nb::cast<double>(value));
    } catch (const std::exception&) {  // not iterable, or an item that is not a number
      throw stars::RewardError("the reward callable must return a sequence of floats, got " +
                               std::string(nb::str(nb::handle(values.type())).c_str()));
    }
  }

 private:
  nb::object fn_;
  nb::dict prompts_;  // by prompt id
};

// ---------------------------------------------------------------------------------------------
// One request's outcome as Python callbacks, called on the engine's loop thread under the GIL.

class CallbackSink : public stars::RequestSink {
 public:
  CallbackSink(nb::object on_segment, nb::object on_result, nb::object on_error)
      : on_segment_(std::move(on_segment)),
        on_result_(std::move(on_result)),
        on_error_(std::move(on_error)) {}

  ~CallbackSink() override {
    nb::gil_scoped_acquire gil;
    on_segment_.reset();
    on_result_.reset();
    on_error_.reset();
  }

  // What this raises fails the request with it.
  void OnSegment(const stars::Segment& segment) override {
    nb::gil_scoped_acquire gil;
    if (!on_segment_.is_none()) on_segment_(nb::cast(segment, nb::rv_policy::copy));
  }

  void OnResult(stars::Result result) override {
    nb::gil_scoped_acquire gil;
    Deliver(on_result_, nb::cast(std::move(result)));
  }

  void OnError(std::exception_ptr error) override {
    nb::gil_scoped_acquire gil;
    Deliver(on_error_, PythonError(error));
  }

 private:
  // Nobody is left to raise to: an exception here is reported as unraisable.
  static void Deliver(const nb::object& callback, nb::object value) {
    try {
      callback(value);
    } catch (nb::python_error& e) {
      e.discard_as_unraisable("stars_cpp request callback");
    }
  }

  nb::object on_segment_;
  nb::object on_result_;
  nb::object on_error_;
};

// ---------------------------------------------------------------------------------------------
// A low-level KV session over the llama layer: forks, rewinds and batched decodes. It backs
// tests and tools that check the KV bookkeeping against from-scratch decoding.

class KvSession {
 public:
  KvSession(std::shared_ptr<stars::Model> model, int32_t n_ctx, int32_t n_seq_max,
            int32_t n_threads)
      : context_(std::move(model), Options(n_ctx, n_seq_max, n_threads)),
        pool_(context_),
        batch_(context_.n_batch()) {}

  int32_t Acquire() { return pool_.Acquire(); }
  int32_t Fork(int32_t source) { return pool_.Fork(source); }
  void Rewind(int32_t seq, int32_t pos) { pool_.Rewind(seq, pos); }
  void Release(int32_t seq) { pool_.Release(seq); }
  void Clear() { pool_.Clear(); }

  // Decodes rows (token, pos, seq, output) as one batch; returns each output's batch index.
  std::vector<int32_t> Decode(const std::vector<int32_t>& tokens, const std::vector<int32_t>& pos,
                              const std::vector<int32_t>& seqs, const std::vector<bool>& outputs) {
    if (tokens.size() != pos.size() || tokens.size() != seqs.size() ||
        tokens.size() != outputs.size()) {
      throw stars::ParameterError("tokens, positions, seq_ids and outputs must have one length");
    }
    batch_.Clear();
    std::vector<int32_t> indices;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const int32_t index = batch_.Add(tokens[i], pos[i], seqs[i], outputs[i]);
      if (outputs[i]) indices.push_back(index);
    }
    context_.Decode(batch_);
    return indices;
  }

  nb::ndarray<nb::numpy, float, nb::ndim<1>> Logits(int32_t batch_index) const {
    const float* row = context_.Logits(batch_index);
    const size_t n = static_cast<size_t>(context_.model().n_vocab());
    float* copy = new float[n];
    std::memcpy(copy, row, n * sizeof(float));
    nb::capsule owner(copy, [](void* p) noexcept { delete[] static_cast<float*>(p); });
    return nb::ndarray<nb::numpy, float, nb::ndim<1>>(copy, {n}, owner);
  }

  int32_t n_ctx() const { return context_.n_ctx(); }
  int32_t n_seq_max() const { return context_.n_seq_max(); }

 private:
  static stars::ContextOptions Options(int32_t n_ctx, int32_t n_seq_max, int32_t n_threads) {
    stars::ContextOptions options;
    options.n_ctx = n_ctx;
    options.n_seq_max = n_seq_max;
    options.n_threads = n_threads;
    return options;
  }

  stars::Context context_;
  stars::SequencePool pool_;
  stars::Batch batch_;
};

std::shared_ptr<stars::Model> BorrowModel(uintptr_t address, nb::object owner,
                                          std::string description, int32_t n_gpu_layers) {
  auto* keep = new nb::object(std::move(owner));
  // The owner is a Python object: drop it under the GIL, whichever thread frees the model.
  std::shared_ptr<void> keep_alive(keep, [](void* p) {
    nb::gil_scoped_acquire gil;
    delete static_cast<nb::object*>(p);
  });
  return stars::Model::Borrow(reinterpret_cast<llama_model*>(address), std::move(keep_alive),
                              std::move(description), n_gpu_layers);
}

// A str, or (role, content) pairs (engine.py checks and converts them).
stars::Prompt ToPrompt(nb::handle item) {
  stars::Prompt prompt;
  if (nb::isinstance<nb::str>(item)) {
    prompt.text = nb::cast<std::string>(item);
  } else {
    for (nb::handle message : item) {
      auto [role, content] = nb::cast<std::pair<std::string, std::string>>(message);
      prompt.roles.push_back(std::move(role));
      prompt.contents.push_back(std::move(content));
    }
  }
  return prompt;
}

// `keys` is None or one str per prompt.
std::vector<stars::Prompt> ToPrompts(const nb::list& items, const nb::object& keys) {
  std::vector<stars::Prompt> prompts;
  prompts.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    prompts.push_back(ToPrompt(items[i]));
    if (!keys.is_none()) prompts.back().key = nb::cast<std::string>(keys[nb::int_(i)]);
  }
  return prompts;
}

nb::dict MetricsDict(const stars::EngineMetrics& m) {
  nb::dict d;
  d["requests_submitted"] = m.requests_submitted;
  d["requests_finished"] = m.requests_finished;
  d["requests_failed"] = m.requests_failed;
  d["requests_cancelled"] = m.requests_cancelled;
  d["requests_queued"] = m.requests_queued;
  d["requests_active"] = m.requests_active;
  d["tokens_sampled"] = m.tokens_sampled;
  d["tokens_accepted"] = m.tokens_accepted;
  d["rounds"] = m.rounds;
  d["candidates_sampled"] = m.candidates_sampled;
  d["decode_calls"] = m.decode_calls;
  d["decode_tokens"] = m.decode_tokens;
  d["decode_seconds"] = m.decode_seconds;
  d["reward_calls"] = m.reward_calls;
  d["reward_rows"] = m.reward_rows;
  d["reward_seconds"] = m.reward_seconds;
  d["sequences_in_use"] = m.sequences_in_use;
  d["sequences_total"] = m.sequences_total;
  d["contexts_created"] = m.contexts_created;
  d["cells_in_use"] = m.cells_in_use;
  d["cells_total"] = m.cells_total;
  return d;
}

// A reward callable often closes over its Engine (through globals): let the GC see that cycle.
CallableReward* CallableRewardOf(PyObject* self) {
  if (!nb::inst_ready(self)) return nullptr;
  return dynamic_cast<CallableReward*>(nb::inst_ptr<stars::Engine>(self)->reward().get());
}

int EngineTraverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  if (CallableReward* reward = CallableRewardOf(self)) Py_VISIT(reward->fn().ptr());
  return 0;
}

int EngineClear(PyObject* self) {
  if (CallableReward* reward = CallableRewardOf(self)) reward->Clear();
  return 0;
}

PyType_Slot engine_slots[] = {{Py_tp_traverse, reinterpret_cast<void*>(EngineTraverse)},
                              {Py_tp_clear, reinterpret_cast<void*>(EngineClear)},
                              {0, nullptr}};

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "stars_cpp native core: STARS decoding over llama.cpp.";
  RegisterExceptions();
  m.attr("max_parallel_sequences") = stars::Context::MaxSequences();
  // What a KV-cached reward's context adds to the policy's n_ctx for its template.
  m.attr("reward_template_room") = stars::kTemplateRoom;
  m.def("live_contexts", &stars::Context::Live,
        "llama.cpp contexts alive in the process (policy and reward contexts alike).");

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
          "path"_a, "n_gpu_layers"_a = 0)
      .def_static("borrow", &BorrowModel, "address"_a, "owner"_a, "description"_a,
                  "n_gpu_layers"_a = 0)
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
             bool parse_special) {
            return stars::Tokenizer(model).Tokenize(text, add_special, parse_special);
          },
          "text"_a, "add_special"_a = true, "parse_special"_a = false)
      .def(
          "detokenize",
          [](const stars::Model& model, const std::vector<int32_t>& tokens) {
            return Utf8(stars::Tokenizer(model).Detokenize(tokens));
          },
          "tokens"_a)
      .def(
          "apply_chat_template",
          [](const stars::Model& model,
             const std::vector<std::pair<std::string, std::string>>& messages) {
            std::vector<stars::ChatMessage> chat;
            for (const auto& [role, content] : messages) chat.push_back({role, content});
            return Utf8(stars::Tokenizer(model).ApplyChatTemplate(chat));
          },
          "messages"_a);

  nb::class_<KvSession>(m, "KvSession", "Forks, rewinds and batched decodes over one context.")
      .def(nb::init<std::shared_ptr<stars::Model>, int32_t, int32_t, int32_t>(), "model"_a,
           "n_ctx"_a = 512, "n_seq_max"_a = 1, "n_threads"_a = 0)
      .def("acquire", &KvSession::Acquire)
      .def("fork", &KvSession::Fork, "source"_a)
      .def("rewind", &KvSession::Rewind, "seq_id"_a, "pos"_a)
      .def("release", &KvSession::Release, "seq_id"_a)
      .def("clear", &KvSession::Clear)
      .def("decode", &KvSession::Decode, "tokens"_a, "positions"_a, "seq_ids"_a, "outputs"_a,
           nb::call_guard<nb::gil_scoped_release>())
      .def("logits", &KvSession::Logits, "batch_index"_a)
      .def_prop_ro("n_ctx", &KvSession::n_ctx)
      .def_prop_ro("n_seq_max", &KvSession::n_seq_max);

  nb::class_<stars::GenerationParams>(m, "GenerationParams")
      .def(nb::init<>())
      .def_prop_rw(
          "mode",
          [](const stars::GenerationParams& p) { return std::string(stars::ModeName(p.mode)); },
          [](stars::GenerationParams& p, const std::string& v) { p.mode = stars::ParseMode(v); })
      .def_rw("segment_tokens", &stars::GenerationParams::segment_tokens)
      .def_rw("candidates", &stars::GenerationParams::candidates)
      .def_rw("max_attempts", &stars::GenerationParams::max_attempts)
      .def_rw("threshold", &stars::GenerationParams::threshold, nb::arg().none())
      .def_rw("alpha", &stars::GenerationParams::alpha)
      .def_rw("beta", &stars::GenerationParams::beta, nb::arg().none())
      .def_rw("target_attempts", &stars::GenerationParams::target_attempts)
      .def_prop_rw(
          "acceptance",
          [](const stars::GenerationParams& p) {
            return std::string(stars::AcceptanceName(p.acceptance));
          },
          [](stars::GenerationParams& p, const std::string& v) {
            p.acceptance = stars::ParseAcceptance(v);
          })
      .def_prop_rw(
          "width",
          [](const stars::GenerationParams& p) { return std::string(stars::WidthName(p.width)); },
          [](stars::GenerationParams& p, const std::string& v) { p.width = stars::ParseWidth(v); })
      .def_rw("max_tokens", &stars::GenerationParams::max_tokens)
      .def_prop_rw(
          "temperature", [](const stars::GenerationParams& p) { return p.sampling.temperature; },
          [](stars::GenerationParams& p, float v) { p.sampling.temperature = v; })
      .def_prop_rw(
          "top_k", [](const stars::GenerationParams& p) { return p.sampling.top_k; },
          [](stars::GenerationParams& p, int32_t v) { p.sampling.top_k = v; })
      .def_prop_rw(
          "top_p", [](const stars::GenerationParams& p) { return p.sampling.top_p; },
          [](stars::GenerationParams& p, float v) { p.sampling.top_p = v; })
      .def_prop_rw(
          "min_p", [](const stars::GenerationParams& p) { return p.sampling.min_p; },
          [](stars::GenerationParams& p, float v) { p.sampling.min_p = v; })
      .def_rw("seed", &stars::GenerationParams::seed)
      .def_rw("stop", &stars::GenerationParams::stop);

  nb::class_<stars::Segment>(m, "Segment")
      .def_prop_ro("text", [](const stars::Segment& s) { return Utf8(s.text); })
      .def_ro("tokens", &stars::Segment::tokens)
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
      .def_ro("seconds_policy", &stars::Stats::seconds_policy)
      .def_ro("seconds_reward", &stars::Stats::seconds_reward)
      .def_ro("seconds_total", &stars::Stats::seconds_total);

  nb::class_<stars::Result>(m, "Result")
      .def_prop_ro("text", [](const stars::Result& r) { return Utf8(r.text); })
      .def_ro("tokens", &stars::Result::tokens)
      .def_prop_ro("finish_reason",
                   [](const stars::Result& r) { return stars::FinishReasonName(r.finish_reason); })
      .def_ro("reward", &stars::Result::reward)
      .def_ro("segments", &stars::Result::segments)
      .def_ro("stats", &stars::Result::stats);

  // The batched protocol the engine drives, for driving a native reward by hand (benchmarks,
  // tests). A row is (prompt id, trunk text, segment text, trunk tokens, segment tokens).
  using Row =
      std::tuple<int32_t, std::string, std::string, std::vector<int32_t>, std::vector<int32_t>>;
  nb::class_<stars::Reward>(m, "Reward", "A native batched reward (one per Engine).")
      .def(
          "begin",
          [](stars::Reward& reward, int32_t prompt, const std::string& text) {
            reward.Begin(prompt, text);
          },
          "prompt"_a, "text"_a, nb::call_guard<nb::gil_scoped_release>())
      .def(
          "score",
          [](stars::Reward& reward, const std::vector<Row>& rows) {
            std::vector<stars::RewardRow> views(rows.size());
            for (size_t i = 0; i < rows.size(); ++i) {
              const auto& [prompt, trunk_text, segment_text, trunk, segment] = rows[i];
              views[i] = {prompt,
                          trunk_text,
                          segment_text,
                          trunk.data(),
                          static_cast<int32_t>(trunk.size()),
                          segment.data(),
                          static_cast<int32_t>(segment.size())};
            }
            std::vector<double> scores;
            nb::gil_scoped_release release;
            reward.Score(views, &scores);
            return scores;
          },
          "rows"_a)
      .def(
          "commit",
          [](stars::Reward& reward, int32_t prompt, const std::vector<int32_t>& tokens,
             const std::string& text) {
            nb::gil_scoped_release release;
            reward.Commit(prompt, tokens.data(), static_cast<int32_t>(tokens.size()), text);
          },
          "prompt"_a, "tokens"_a, "text"_a)
      .def("finish", &stars::Reward::Finish, "prompt"_a)
      .def("tokens_decoded", &stars::Reward::TokensDecoded, "prompt"_a);

  nb::class_<stars::ClassifierReward, stars::Reward>(m, "ClassifierReward")
      .def(
          "__init__",
          [](stars::ClassifierReward* self, std::shared_ptr<stars::Model> model,
             std::vector<int32_t> labels, int32_t pair, int32_t n_ctx, int32_t n_threads) {
            stars::ClassifierOptions options;
            options.labels = std::move(labels);
            options.pair = pair;
            options.n_ctx = n_ctx;
            options.n_threads = n_threads;
            new (self) stars::ClassifierReward(std::move(model), options);
          },
          "model"_a, "labels"_a, "pair"_a = -1, "n_ctx"_a = 0, "n_threads"_a = 0)
      .def_prop_ro("pair", &stars::ClassifierReward::pair)
      .def_prop_ro("row_limit", &stars::ClassifierReward::row_limit)
      .def("score_texts", &stars::ClassifierReward::ScoreTexts, "prompts"_a, "responses"_a,
           nb::call_guard<nb::gil_scoped_release>());

  nb::class_<stars::KvCachedReward, stars::Reward>(
      m, "KvCachedReward", "A reward read off a causal model, KV-cached per prompt.")
      .def_prop_ro("shares_vocabulary", &stars::KvCachedReward::shares_vocabulary)
      .def_prop_ro("n_suffix_tokens", &stars::KvCachedReward::n_suffix_tokens)
      .def("n_prefix_tokens", &stars::KvCachedReward::n_prefix_tokens, "prompt"_a)
      .def(
          "render",
          [](const stars::KvCachedReward& reward, const std::string& prompt,
             const std::string& response) { return Utf8(reward.RenderText(prompt, response)); },
          "prompt"_a, "response"_a)
      .def("input_tokens", &stars::KvCachedReward::InputTokens, "prompt"_a, "response"_a)
      .def("score_texts", &stars::KvCachedReward::ScoreTexts, "prompts"_a, "responses"_a,
           nb::call_guard<nb::gil_scoped_release>())
      .def("score_policy_tokens", &stars::KvCachedReward::ScorePolicyTokens, "prompt"_a, "tokens"_a,
           nb::call_guard<nb::gil_scoped_release>());

  nb::class_<stars::JudgeReward, stars::KvCachedReward>(m, "JudgeReward")
      .def(
          "__init__",
          [](stars::JudgeReward* self, std::shared_ptr<stars::Model> judge,
             std::shared_ptr<stars::Model> policy, const std::string& question,
             const std::string& yes, const std::string& no, int32_t n_ctx, int32_t n_threads,
             const std::string& layout, const std::string& kv_type) {
            stars::JudgeOptions options;
            options.question = question;
            options.layout = stars::ParseJudgeLayout(layout);
            options.yes = yes;
            options.no = no;
            options.n_ctx = n_ctx;
            options.n_threads = n_threads;
            options.kv_type = stars::ParseKvType(kv_type);
            new (self) stars::JudgeReward(std::move(judge), policy, options);
          },
          "judge"_a, "policy"_a.none(), "question"_a, "yes"_a, "no"_a, "n_ctx"_a = 8192,
          "n_threads"_a = 0, "layout"_a = "question_first", "kv_type"_a = "f16");

  nb::class_<stars::CausalReward, stars::KvCachedReward>(m, "CausalReward")
      .def(
          "__init__",
          [](stars::CausalReward* self, std::shared_ptr<stars::Model> model,
             const std::string& path, std::shared_ptr<stars::Model> policy,
             const std::string& input_template, int32_t n_ctx, int32_t n_threads,
             const std::string& kv_type) {
            stars::CausalOptions options;
            options.input_template = input_template;
            options.kv_type = stars::ParseKvType(kv_type);
            options.n_ctx = n_ctx;
            options.n_threads = n_threads;
            new (self) stars::CausalReward(std::move(model), path, policy, options);
          },
          "model"_a, "path"_a, "policy"_a.none(), "template"_a = "", "n_ctx"_a = 8192,
          "n_threads"_a = 0, "kv_type"_a = "f16")
      .def_prop_ro("head",
                   [](const stars::CausalReward& reward) {
                     return std::vector<float>(reward.head().begin(), reward.head().end());
                   })
      .def_prop_ro("bias", &stars::CausalReward::bias);

  nb::class_<stars::Engine>(m, "Engine", "Plain, best-of-N and STARS decoding on one model.",
                            nb::type_slots(engine_slots))
      .def(
          "__init__",
          [](stars::Engine* self, std::shared_ptr<stars::Model> model, nb::object reward,
             int32_t n_ctx, int32_t n_threads, int32_t max_queue, const std::string& kv_type,
             int32_t n_seq_max) {
            std::shared_ptr<stars::Reward> native;
            if (!reward.is_none() && !nb::try_cast(reward, native)) {
              native = std::make_shared<CallableReward>(reward);
            }
            new (self) stars::Engine(
                std::move(model), std::move(native),
                {n_ctx, n_threads, max_queue, stars::ParseKvType(kv_type), n_seq_max});
          },
          "model"_a, "reward"_a.none(), "n_ctx"_a = 4096, "n_threads"_a = 0, "max_queue"_a = 0,
          "kv_type"_a = "f16", "n_seq_max"_a = 0)
      .def_prop_ro("has_reward", &stars::Engine::has_reward)
      .def_prop_ro("n_ctx", &stars::Engine::n_ctx)
      .def(
          "generate",
          [](stars::Engine& engine, const nb::list& items, const stars::GenerationParams& params,
             nb::object on_segment, nb::object keys) {
            const std::vector<stars::Prompt> prompts = ToPrompts(items, keys);
            stars::GenerateHooks hooks;
            // KeyboardInterrupt: Python's signal handler only runs when asked, under the GIL.
            hooks.check_interrupt = [] {
              nb::gil_scoped_acquire gil;
              if (PyErr_CheckSignals() != 0) throw nb::python_error();
            };
            if (!on_segment.is_none()) {
              hooks.on_segment = [&on_segment](int32_t prompt, const stars::Segment& segment) {
                nb::gil_scoped_acquire gil;
                on_segment(prompt, nb::cast(segment, nb::rv_policy::copy));
              };
            }
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
            auto sink = std::make_shared<CallbackSink>(std::move(on_segment), std::move(on_result),
                                                       std::move(on_error));
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
