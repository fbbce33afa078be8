#include "glue.h"

#include <nanobind/stl/pair.h>
// Without it try_cast would look for a bound std::shared_ptr type, and fail.
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>

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
                                   int32_t n_gpu_layers) {
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
                       std::move(description), n_gpu_layers);
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
