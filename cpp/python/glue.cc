#include "glue.h"

#include <nanobind/stl/pair.h>
// Without it try_cast would look for a bound std::shared_ptr type, and fail.
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <utility>

#include "exceptions.h"
#include "stars/errors.h"
#include "stars/result.h"

namespace nb = nanobind;

namespace stars::python {
namespace {

// The floats of a reward callable's return value; RewardError naming what is not one.
void ToFloats(const nb::object& values, std::vector<double>* out) {
  out->clear();
  PyObject* iterator = PyObject_GetIter(values.ptr());
  if (iterator == nullptr) {
    PyErr_Clear();
    throw RewardError("the reward callable must return a sequence of floats, got " +
                      std::string(nb::str(nb::handle(values.type())).c_str()));
  }
  nb::object it = nb::steal(iterator);
  for (size_t i = 0;; ++i) {
    PyObject* item = PyIter_Next(it.ptr());
    if (item == nullptr) {
      if (PyErr_Occurred()) throw nb::python_error();  // the iteration itself raised
      return;
    }
    nb::object value = nb::steal(item);
    const double number = PyFloat_AsDouble(value.ptr());
    if (number == -1.0 && PyErr_Occurred()) {
      nb::python_error error;
      std::string shown = "?";
      try {
        shown = nb::cast<std::string>(nb::repr(value));
      } catch (...) {  // a repr that raises too: the type names it
        shown = std::string("a ") + nb::type_name(value.type()).c_str();
      }
      if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
      std::string reason = nb::type_name(error.type()).c_str();
      try {
        reason += std::string(": ") + nb::str(error.value()).c_str();
      } catch (...) {  // a __str__ that raises: the type alone
      }
      throw RewardError("the reward callable's value " + std::to_string(i) + " (" + shown +
                        ") is not a float: " + reason);
    }
    out->push_back(number);
  }
}

// A Python callable fn(prompts, responses) -> sequence of floats, as a batched reward.
class CallableReward : public Reward {
 public:
  explicit CallableReward(nb::object fn) : fn_(std::move(fn)) {}

  ~CallableReward() override {
    if (!PythonUsable()) {  // the interpreter is going away: leave it the references
      fn_.release();
      prompts_.release();
      return;
    }
    nb::gil_scoped_acquire gil;
    fn_.reset();
    prompts_.reset();
  }

  void Begin(int32_t prompt, std::string_view text) override {
    nb::gil_scoped_acquire gil;
    CallPython([&] { prompts_[nb::int_(prompt)] = Utf8(std::string(text)); });
  }

  void Finish(int32_t prompt) override {
    nb::gil_scoped_acquire gil;
    CallPython([&] {
      nb::int_ key(prompt);
      if (prompts_.contains(key)) nb::del(prompts_[key]);
    });
  }

  // The callable, for the garbage collector: it may reference the Engine that owns this.
  nb::handle fn() const { return fn_; }
  void Clear() { fn_ = nb::none(); }

  void Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) override {
    nb::gil_scoped_acquire gil;
    CallPython([&] {
      nb::list prompts;
      nb::list responses;
      for (const RewardRow& row : rows) {
        prompts.append(prompts_[nb::int_(row.prompt)]);
        responses.append(Utf8(row.ResponseText()));
      }
      nb::object values = fn_(prompts, responses);
      ToFloats(values, scores);
    });
  }

 private:
  nb::object fn_;
  nb::dict prompts_;  // by prompt id
};

// One request's outcome as Python callbacks.
class CallbackSink : public RequestSink {
 public:
  CallbackSink(nb::object on_segment, nb::object on_result, nb::object on_error)
      : on_segment_(std::move(on_segment)),
        on_result_(std::move(on_result)),
        on_error_(std::move(on_error)) {}

  ~CallbackSink() override {
    if (!PythonUsable()) {  // the interpreter is going away: leave it the references
      on_segment_.release();
      on_result_.release();
      on_error_.release();
      return;
    }
    nb::gil_scoped_acquire gil;
    on_segment_.reset();
    on_result_.reset();
    on_error_.reset();
  }

  // What this raises fails the request with it.
  void OnSegment(const Segment& segment) override {
    nb::gil_scoped_acquire gil;
    CallPython([&] {
      if (!on_segment_.is_none()) on_segment_(nb::cast(segment, nb::rv_policy::copy));
    });
  }

  void OnResult(Result result) override {
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

// A reward callable often closes over its Engine (through globals): let the GC see that cycle.
CallableReward* CallableRewardOf(PyObject* self) {
  if (!nb::inst_ready(self)) return nullptr;
  return dynamic_cast<CallableReward*>(nb::inst_ptr<Engine>(self)->reward().get());
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

nb::str Utf8(std::string_view text) {
  PyObject* str =
      PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace");
  if (str == nullptr) throw nb::python_error();
  return nb::steal<nb::str>(str);
}

std::shared_ptr<Reward> ToReward(nb::object reward) {
  if (reward.is_none()) return nullptr;
  std::shared_ptr<Reward> native;
  if (nb::try_cast(reward, native)) return native;
  return std::make_shared<CallableReward>(std::move(reward));
}

PyType_Slot* EngineSlots() { return engine_slots; }

std::shared_ptr<RequestSink> MakeCallbackSink(nb::object on_segment, nb::object on_result,
                                              nb::object on_error) {
  return std::make_shared<CallbackSink>(std::move(on_segment), std::move(on_result),
                                        std::move(on_error));
}

GenerateHooks PythonHooks(const nb::object& on_segment) {
  GenerateHooks hooks;
  // KeyboardInterrupt: Python's signal handler only runs when asked, under the GIL.
  hooks.check_interrupt = [] {
    nb::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw nb::python_error();
  };
  if (!on_segment.is_none()) {
    hooks.on_segment = [&on_segment](int32_t prompt, const Segment& segment) {
      nb::gil_scoped_acquire gil;
      CallPython([&] { on_segment(prompt, nb::cast(segment, nb::rv_policy::copy)); });
    };
  }
  return hooks;
}

std::shared_ptr<Model> BorrowModel(uintptr_t address, nb::object owner, std::string description,
                                   int32_t n_gpu_layers, std::string path) {
  auto* keep = new nb::object(std::move(owner));
  // The owner is a Python object: drop it under the GIL, whichever thread frees the model.
  std::shared_ptr<void> keep_alive(keep, [](void* p) {
    auto* owner = static_cast<nb::object*>(p);
    if (!PythonUsable()) {  // the interpreter is going away: leave it the reference
      owner->release();
      delete owner;
      return;
    }
    nb::gil_scoped_acquire gil;
    delete owner;
  });
  return Model::Borrow(reinterpret_cast<llama_model*>(address), std::move(keep_alive),
                       std::move(description), n_gpu_layers, std::move(path));
}

Prompt ToPrompt(nb::handle item) {
  Prompt prompt;
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

std::vector<Prompt> ToPrompts(const nb::list& items, const nb::object& keys) {
  std::vector<Prompt> prompts;
  prompts.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    prompts.push_back(ToPrompt(items[i]));
    if (!keys.is_none()) prompts.back().key = nb::cast<std::string>(keys[nb::int_(i)]);
  }
  return prompts;
}

namespace {

[[noreturn]] void WrongType(const ParamSpec& spec, nb::handle value) {
  std::string shown = "?";
  try {
    shown = nb::cast<std::string>(nb::repr(value));
  } catch (...) {  // a repr that raises: its type names it
    shown = std::string("a ") + nb::type_name(value.type()).c_str();
  }
  throw ParameterError(spec.name,
                       spec.name + " must be " + ParamRule(spec, true) + ", got " + shown);
}

std::string Text(const ParamSpec& spec, nb::handle value) {
  if (!PyUnicode_Check(value.ptr())) WrongType(spec, value);
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(value.ptr(), &size);
  if (data == nullptr) {  // a lone surrogate: not encodable as UTF-8
    PyErr_Clear();
    throw ParameterError(spec.name, spec.name +
                                        " is not valid text (it cannot be encoded as "
                                        "UTF-8): " +
                                        nb::cast<std::string>(nb::repr(value)));
  }
  return std::string(data, static_cast<size_t>(size));
}

bool IsNumber(nb::handle value) {
  return !PyBool_Check(value.ptr()) && (PyLong_Check(value.ptr()) || PyFloat_Check(value.ptr()));
}

ParamValue ToParamValue(const ParamSpec& spec, nb::handle value) {
  switch (spec.type) {
    case ParamType::kInt: {
      if (PyBool_Check(value.ptr()) || !PyLong_Check(value.ptr())) WrongType(spec, value);
      int overflow = 0;
      const long long number = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
      if (overflow != 0) {
        throw ParameterError(spec.name, spec.name + " must fit a 32-bit integer, got " +
                                            nb::cast<std::string>(nb::str(value)));
      }
      return int64_t{number};
    }
    case ParamType::kFloatOrAuto:
      if (PyUnicode_Check(value.ptr()) && Text(spec, value) == "auto") return std::monostate{};
      [[fallthrough]];
    case ParamType::kFloat:
      if (!IsNumber(value)) WrongType(spec, value);
      return PyFloat_AsDouble(value.ptr());
    case ParamType::kChoice:
    case ParamType::kText:
      return Text(spec, value);
    case ParamType::kTextList: {
      if (PyUnicode_Check(value.ptr())) return std::vector<std::string>{Text(spec, value)};
      if (!PyList_Check(value.ptr()) && !PyTuple_Check(value.ptr())) WrongType(spec, value);
      std::vector<std::string> out;
      for (nb::handle item : value) out.push_back(Text(spec, item));
      return out;
    }
    case ParamType::kBool:
      if (!PyBool_Check(value.ptr())) WrongType(spec, value);
      return value.ptr() == Py_True;
    case ParamType::kSeed: {
      if (value.is_none()) return std::monostate{};
      if (PyBool_Check(value.ptr()) || !PyLong_Check(value.ptr())) WrongType(spec, value);
      const unsigned long long number = PyLong_AsUnsignedLongLong(value.ptr());
      if (number == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
        PyErr_Clear();  // negative, or 2**64 and beyond
        throw ParameterError(spec.name, spec.name + " must be in [0, 2**64), got " +
                                            nb::cast<std::string>(nb::str(value)));
      }
      return uint64_t{number};
    }
  }
  WrongType(spec, value);
}

}  // namespace

std::vector<ParamGroup> Groups(const std::vector<std::string>& names) {
  std::vector<ParamGroup> groups;
  for (const std::string& name : names) {
    bool found = false;
    for (ParamGroup group : {ParamGroup::kGeneration, ParamGroup::kEngine, ParamGroup::kReward}) {
      if (name == ParamGroupName(group)) {
        groups.push_back(group);
        found = true;
      }
    }
    if (!found) throw ParameterError("unknown settings group '" + name + "'");
  }
  return groups;
}

nb::object FromParamValue(const ParamValue& value, ParamType type) {
  if (const bool* b = std::get_if<bool>(&value)) return nb::bool_(*b);
  if (const int64_t* i = std::get_if<int64_t>(&value)) return nb::int_(*i);
  if (const uint64_t* u = std::get_if<uint64_t>(&value)) {
    return nb::steal(PyLong_FromUnsignedLongLong(*u));
  }
  if (const double* d = std::get_if<double>(&value)) return nb::float_(*d);
  if (const std::string* s = std::get_if<std::string>(&value)) return Utf8(*s);
  if (const auto* list = std::get_if<std::vector<std::string>>(&value)) {
    nb::list out;
    for (const std::string& s : *list) out.append(Utf8(s));
    return out;
  }
  return type == ParamType::kSeed ? nb::none() : nb::object(nb::str("auto"));
}

Settings ToSettings(const nb::dict& values, std::vector<ParamGroup> groups) {
  Settings settings;
  for (auto [key, value] : values) {
    if (!PyUnicode_Check(key.ptr())) {
      throw ParameterError("parameter names must be strings, got " +
                           nb::cast<std::string>(nb::repr(key)));
    }
    const std::string name = nb::cast<std::string>(key);
    const ParamSpec* spec = nullptr;
    for (const ParamSpec& candidate : ParamSpecs()) {
      const bool in_group =
          std::find(groups.begin(), groups.end(), candidate.group) != groups.end();
      if (candidate.name == name && in_group) spec = &candidate;
    }
    if (spec == nullptr) {
      std::string known;
      for (const ParamSpec& candidate : ParamSpecs()) {
        if (std::find(groups.begin(), groups.end(), candidate.group) != groups.end()) {
          known += (known.empty() ? "" : ", ") + candidate.name;
        }
      }
      throw ParameterError(name, "unknown parameter '" + name + "'; known: " + known);
    }
    SetParam(settings, name, ToParamValue(*spec, value));
  }
  return settings;
}

nb::list ParamsTable() {
  nb::list table;
  for (const ParamSpec& spec : ParamSpecs()) {
    nb::dict entry;
    entry["name"] = spec.name;
    entry["group"] = ParamGroupName(spec.group);
    entry["type"] = ParamTypeName(spec.type);
    entry["default"] = FromParamValue(spec.Default(), spec.type);
    entry["default_text"] = FormatParamValue(spec, spec.Default());
    entry["serve_default"] = spec.serve_default ? FromParamValue(*spec.serve_default, spec.type)
                                                : FromParamValue(spec.Default(), spec.type);
    nb::list choices;
    for (const std::string& choice : spec.choices) choices.append(choice);
    entry["choices"] = choices;
    entry["min"] = spec.min ? nb::object(nb::float_(*spec.min)) : nb::none();
    entry["max"] = spec.max ? nb::object(nb::float_(*spec.max)) : nb::none();
    entry["min_exclusive"] = spec.min_exclusive;
    entry["max_exclusive"] = spec.max_exclusive;
    entry["rule"] = ParamRule(spec);
    entry["help"] = spec.help;
    nb::list front_ends;
    for (FrontEnd front_end : kFrontEnds) {
      if (spec.TakenBy(front_end)) front_ends.append(FrontEndName(front_end));
    }
    entry["front_ends"] = front_ends;
    entry["changes_output"] = spec.changes_output;
    table.append(entry);
  }
  return table;
}

nb::list ErrorTable() {
  nb::list table;
  std::vector<ErrorClass> entries = ErrorClasses();
  entries.push_back(OtherError());  // name "": what an exception outside the table gets
  for (const ErrorClass& entry : entries) {
    nb::dict row;
    row["name"] = entry.name;
    row["exit_code"] = entry.exit_code;
    row["http_status"] = entry.http_status;
    row["http_type"] = entry.http_type;
    table.append(row);
  }
  return table;
}

nb::dict ParamsDict(const GenerationParams& params) {
  Settings settings;
  settings.params = params;
  nb::dict out;
  for (const ParamSpec& spec : ParamSpecs()) {
    if (spec.group == ParamGroup::kGeneration) {
      out[spec.name.c_str()] = FromParamValue(spec.get(settings), spec.type);
    }
  }
  return out;
}

nb::dict MetricsDict(const EngineMetrics& m) {
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
  d["decode_micro_batches"] = m.decode_micro_batches;
  d["decode_tokens"] = m.decode_tokens;
  d["decode_seconds"] = m.decode_seconds;
  d["reward_calls"] = m.reward_calls;
  d["reward_rows"] = m.reward_rows;
  d["reward_seconds"] = m.reward_seconds;
  d["kv_stream_copies"] = m.kv_stream_copies;
  d["sequences_in_use"] = m.sequences_in_use;
  d["sequences_total"] = m.sequences_total;
  d["contexts_created"] = m.contexts_created;
  d["sampling_threads"] = m.sampling_threads;
  d["cells_in_use"] = m.cells_in_use;
  d["cells_total"] = m.cells_total;
  return d;
}

nb::ndarray<nb::numpy, float, nb::ndim<1>> FloatArray(const float* data, size_t n) {
  float* copy = new float[n];
  std::memcpy(copy, data, n * sizeof(float));
  nb::capsule owner(copy, [](void* p) noexcept { delete[] static_cast<float*>(p); });
  return nb::ndarray<nb::numpy, float, nb::ndim<1>>(copy, {n}, owner);
}

}  // namespace stars::python
