// Exception types of the stars_cpp core. Every failure the core detects is one of these; the
// Python binding maps each to a Python exception class in one place (cpp/python/module.cc).
#pragma once

#include <stdexcept>
#include <string>

namespace stars {

// Base of every stars_cpp error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A model file could not be loaded: empty, not a GGUF, or rejected by llama.cpp.
class ModelLoadError : public Error {
 public:
  using Error::Error;
};

// The model path does not exist. Python: also a FileNotFoundError.
class ModelNotFoundError : public ModelLoadError {
 public:
  using ModelLoadError::ModelLoadError;
};

// A prompt (plus the tokens it may generate) does not fit the context. Python: also a ValueError.
class ContextLengthError : public Error {
 public:
  using Error::Error;
};

// llama_decode failed (invalid batch, backend error) or found no KV slot.
class DecodeError : public Error {
 public:
  using Error::Error;
};

// A generation parameter is out of range or unknown. Python: ValueError.
class ParameterError : public Error {
 public:
  using Error::Error;
};

// The model has no chat template, or llama.cpp does not support it. Python: also a ValueError.
class ChatTemplateError : public Error {
 public:
  using Error::Error;
};

// A reward returned the wrong number of values or a non-finite one, or cannot be built.
class RewardError : public Error {
 public:
  using Error::Error;
};

// A reward, hook or sink running on an engine's loop thread called back into that engine, which
// would wait on itself forever.
class ReentrantCallError : public Error {
 public:
  using Error::Error;
};

// The engine's queue holds max_queue requests already. Try again later.
class QueueFullError : public Error {
 public:
  using Error::Error;
};

// The engine was closed; it takes no more requests.
class EngineClosedError : public Error {
 public:
  using Error::Error;
};

}  // namespace stars
