// Every stars error reaches Python as its class from stars_cpp/errors.py, where the classes are
// defined once; this maps the C++ types onto them.
#pragma once

#include <nanobind/nanobind.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>

namespace stars::python {

// A Python exception raised by a callback (a reward, a request sink) on the engine's loop thread.
// nanobind's python_error is consumed when raised, so one that reached two callers (requests that
// share a round, the callers of one Generate) would abort the process; this one can be raised
// any number of times, from any thread, each raise with its own copy of the exception.
class CallbackError : public std::exception {
 public:
  // Under the GIL.
  explicit CallbackError(nanobind::python_error error);
  const char* what() const noexcept override { return message_.c_str(); }
  // Sets the Python error indicator to a copy of the exception (under the GIL).
  void Raise() const;

 private:
  std::shared_ptr<const nanobind::python_error> error_;  // never restored: copied at each Raise
  std::string message_;
};

// Runs `f` (under the GIL), turning a Python exception it raises into a CallbackError.
template <typename F>
decltype(auto) CallPython(F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (nanobind::python_error& error) {
    throw CallbackError(std::move(error));
  }
}

// Whether the interpreter can still be entered: false once it is finalizing, when taking the GIL
// from a thread it does not know would end that thread. Destructors that may run on the loop
// thread check it and leak their Python references instead.
bool PythonUsable();

// Looks the classes up in stars_cpp.errors and registers the translator (once, at import).
// Throws TypeError when a name there is not an exception class.
void RegisterExceptions();

// The Python exception object for `p` (under the GIL): a stars error as its class, a Python
// exception as a copy of itself. For an outcome handed to a callback on another thread than it
// rose on.
nanobind::object PythonError(const std::exception_ptr& p);

}  // namespace stars::python
