#include "exceptions.h"

#include <string>

#include "stars/errors.h"

namespace nb = nanobind;

namespace stars::python {
namespace {

// Borrowed from stars_cpp.errors, which keeps them alive for the process.
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
  } catch (const CallbackError& e) {
    e.Raise();
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
