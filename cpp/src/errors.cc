#include "stars/errors.h"

namespace stars {
namespace {

// Most derived first: ClassifyError takes the first entry the error is an instance of.
template <typename T>
bool Is(const std::exception& error) {
  return dynamic_cast<const T*>(&error) != nullptr;
}

struct Entry {
  ErrorClass info;
  bool (*is)(const std::exception&);
};

const std::vector<Entry>& Entries() {
  static const std::vector<Entry> entries = {
      {{"ModelNotFoundError", 2, 400, "invalid_request_error"}, Is<ModelNotFoundError>},
      {{"ModelLoadError", 2, 400, "invalid_request_error"}, Is<ModelLoadError>},
      {{"ContextLengthError", 2, 400, "invalid_request_error"}, Is<ContextLengthError>},
      {{"ParameterError", 2, 400, "invalid_request_error"}, Is<ParameterError>},
      {{"ChatTemplateError", 2, 400, "invalid_request_error"}, Is<ChatTemplateError>},
      {{"DecodeError", 1, 500, "server_error"}, Is<DecodeError>},
      {{"RewardError", 1, 500, "server_error"}, Is<RewardError>},
      {{"ReentrantCallError", 1, 500, "server_error"}, Is<ReentrantCallError>},
      // The server is busy or going away: a client may retry later or elsewhere.
      {{"QueueFullError", 1, 503, "server_busy"}, Is<QueueFullError>},
      {{"EngineClosedError", 1, 503, "server_closing"}, Is<EngineClosedError>},
      // Raised by the Python package only (stars_cpp/errors.py): no C++ type is one of them.
      {{"DatasetError", 2, 400, "invalid_request_error"}, nullptr},
      {{"SourceNotFoundError", 2, 400, "invalid_request_error"}, nullptr},
      {{"ConversionError", 1, 500, "server_error"}, nullptr},
      // Python's name for stars::Error.
      {{"StarsError", 1, 500, "server_error"}, Is<Error>},
  };
  return entries;
}

}  // namespace

const std::vector<ErrorClass>& ErrorClasses() {
  static const std::vector<ErrorClass> classes = [] {
    std::vector<ErrorClass> out;
    for (const Entry& entry : Entries()) out.push_back(entry.info);
    return out;
  }();
  return classes;
}

const ErrorClass& ClassifyError(const std::exception& error) {
  for (const Entry& entry : Entries()) {
    if (entry.is != nullptr && entry.is(error)) return entry.info;
  }
  return OtherError();
}

const ErrorClass& OtherError() {
  static const ErrorClass other = {"", 1, 500, "server_error"};
  return other;
}

}  // namespace stars
