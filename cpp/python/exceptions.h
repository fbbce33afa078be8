// Every stars error reaches Python as its class from stars_cpp/errors.py, where the classes are
// defined once; this maps the C++ types onto them.
#pragma once

#include <nanobind/nanobind.h>

#include <exception>

namespace stars::python {

// Looks the classes up in stars_cpp.errors and registers the translator (once, at import).
// Throws TypeError when a name there is not an exception class.
void RegisterExceptions();

// The Python exception object for `p` (under the GIL): a stars error as its class, a Python
// exception as itself. For an outcome handed to a callback on another thread than it rose on.
nanobind::object PythonError(const std::exception_ptr& p);

}  // namespace stars::python
