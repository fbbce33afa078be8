// What the bindings translate beyond nanobind's own casters: Python callables as rewards and
// request callbacks, borrowed llama_cpp models, prompts, metrics and text.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "stars/engine.h"
#include "stars/model.h"
#include "stars/param_spec.h"
#include "stars/reward.h"

namespace stars::python {

// Model text may end inside a UTF-8 character (a segment boundary): decoded with replacement,
// never failing.
nanobind::str Utf8(std::string_view text);

// A native reward as itself; any other object as a callable fn(prompts, responses) -> floats,
// called under the GIL from the engine's loop thread. None: no reward.
std::shared_ptr<Reward> ToReward(nanobind::object reward);

// Type slots for the Engine's class, so that the garbage collector sees the cycle through a
// reward callable that references its Engine.
PyType_Slot* EngineSlots();

// A request's outcome as Python callbacks, called on the engine's loop thread under the GIL.
// on_segment may be None; what it raises fails the request.
std::shared_ptr<RequestSink> MakeCallbackSink(nanobind::object on_segment,
                                              nanobind::object on_result,
                                              nanobind::object on_error);

// Hooks of Engine::Generate: KeyboardInterrupt checks, and on_segment(prompt, segment) unless
// it is None. They refer to `on_segment`, which must outlive the call.
GenerateHooks PythonHooks(const nanobind::object& on_segment);

// The llama_model at `address`, owned by the Python object `owner` (a llama_cpp.Llama), which
// the model keeps alive.
std::shared_ptr<Model> BorrowModel(uintptr_t address, nanobind::object owner,
                                   std::string description, int32_t n_gpu_layers, std::string path);

// A str, or (role, content) pairs (engine.py checks and converts them).
Prompt ToPrompt(nanobind::handle item);
// `keys` is None or one str per prompt.
std::vector<Prompt> ToPrompts(const nanobind::list& items, const nanobind::object& keys);

// Python keyword values as settings (param_spec.h), on top of the defaults: each name must be a
// setting of `group`, each value of its type (an int for an int, "auto" or a number for
// threshold, None for a random seed, a str or a list of str for stop). Range checks are the
// spec's. Throws ParameterError naming the setting.
Settings ToSettings(const nanobind::dict& values, std::vector<ParamGroup> groups);

// Groups by their names ("generation", "engine", "reward"); ParameterError for another.
std::vector<ParamGroup> Groups(const std::vector<std::string>& names);

// A value as Python writes it: "auto" for a float-or-auto left to the engine, None for a
// random seed.
nanobind::object FromParamValue(const ParamValue& value, ParamType type);

// The spec table as a list of dicts, for stars_cpp's front ends (_core.PARAMS).
nanobind::list ParamsTable();

// The error table (_core.ERROR_CLASSES).
nanobind::list ErrorTable();

// The generation parameters' values by name, as Python writes them ("auto", None for random).
nanobind::dict ParamsDict(const GenerationParams& params);

nanobind::dict MetricsDict(const EngineMetrics& metrics);

// A numpy copy of `n` floats, for a view that the next decode overwrites.
nanobind::ndarray<nanobind::numpy, float, nanobind::ndim<1>> FloatArray(const float* data,
                                                                        size_t n);

}  // namespace stars::python
