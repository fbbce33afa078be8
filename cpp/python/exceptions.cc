#include "exceptions.h"

#include <map>
#include <string>

#include "stars/errors.h"

namespace nb = nanobind;

namespace stars::python {
namespace {

// Borrowed from stars_cpp.errors, which keeps them alive for the process: the class of each
// entry of the error table (stars/errors.h), by its name.
std::map<std::string, PyObject*> classes;

// A stars error as its Python class (the table's name for its most derived type), with the
// parameter it names in `param`; anything else is left to nanobind.
void TranslateException(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const CallbackError& e) {
    e.Raise();
  } catch (const stars::Error& e) {
    PyObject* type = classes.at(stars::ClassifyError(e).name);
    PyObject* value = nullptr;
    if (!e.param().empty()) {
      value = PyObject_CallFunction(type, "ss", e.what(), e.param().c_str());
    } else {
      value = PyObject_CallFunction(type, "s", e.what());
    }
    if (value == nullptr) return;  // the class itself raised: that error propagates
    PyErr_SetObject(type, value);
    Py_DECREF(value);
  }
}

}  // namespace

CallbackError::CallbackError(nb::python_error error)
    : error_(std::make_shared<const nb::python_error>(std::move(error))),
      message_(error_->what()) {}

void CallbackError::Raise() const {
  nb::handle value = error_->value();
  nb::object copy;
  try {
    copy = nb::module_::import_("copy").attr("copy")(value);
    if (!PyExceptionInstance_Check(copy.ptr())) copy = nb::borrow(value);
  } catch (nb::python_error&) {
    copy = nb::borrow(value);  // an exception that cannot be copied is raised as itself
  }
  if (!copy.is(value)) {
    nb::object traceback = error_->traceback();
    if (traceback.is_valid()) PyException_SetTraceback(copy.ptr(), traceback.ptr());
    PyException_SetCause(copy.ptr(), PyException_GetCause(value.ptr()));
    PyException_SetContext(copy.ptr(), PyException_GetContext(value.ptr()));
  }
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(copy.ptr())), copy.ptr());
}

bool PythonUsable() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsInitialized() && !Py_IsFinalizing();
#else
  return Py_IsInitialized() && !_Py_IsFinalizing();
#endif
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
  for (const stars::ErrorClass& entry : stars::ErrorClasses()) {
    classes[entry.name] = get(entry.name);  // Python-only classes too: each must exist
  }
  nb::register_exception_translator(TranslateException);
}

nb::object PythonError(const std::exception_ptr& p) {
  try {
    TranslateException(p, nullptr);
  } catch (nb::python_error& e) {
    // Not restore(): that consumes an exception that other holders of `p` may raise again.
    PyErr_SetObject(e.type().ptr(), e.value().ptr());
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

}  // namespace stars::python
