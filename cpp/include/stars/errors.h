// Exception types of the stars_cpp core. Every failure the core detects is one of these; the
// Python binding maps each to a Python exception class in one place (cpp/python/module.cc).
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace stars {

// Base of every stars_cpp error. `param` names the setting or field at fault (param_spec.h),
// empty when no single one is; Python has it in the exception's `param` attribute and the
// server in the OpenAI error's.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  Error(std::string param, const std::string& message)
      : std::runtime_error(message), param_(std::move(param)) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
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

// A parameter or argument is out of range, of the wrong type or unknown (its name in
// `param`). Python: ValueError.
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

// How each front end reports an error class: the CLIs' exit status, the server's HTTP status
// and OpenAI error type. One table (errors.cc) for stars-cli, stars-cpp and the server.
struct ErrorClass {
  const char* name;  // the class's name, the same in C++ and Python
  int exit_code;     // 2: bad input (arguments, a missing or bad file); 1: anything else
  int http_status;
  const char* http_type;
};

// The table, most derived classes first; its last entry is Error itself ("StarsError"). It
// lists the Python package's own classes too, which Python looks up by name along an
// exception's class hierarchy.
const std::vector<ErrorClass>& ErrorClasses();

// The entry of `error`'s most derived class in the table; OtherError() for an exception that
// is no Error.
const ErrorClass& ClassifyError(const std::exception& error);

// What any other exception gets: {"", 1, 500, "server_error"}.
const ErrorClass& OtherError();

}  // namespace stars
