// Text formats of the Python CLI, so that stars-cli prints what `stars-cpp generate` prints:
// Python's repr() of a float and of a str, and json.dumps(..., indent=2) with ensure_ascii.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stars::cli {

// repr(float): the shortest digits that round-trip, fixed from 1e-4 up to 1e16, else
// scientific ("1e-05", "1.5e+16"), and "inf", "nan".
std::string PyFloat(double value);

// repr(str) of UTF-8 text decoded with errors="replace" (as the bindings decode model text).
std::string PyStr(std::string_view utf8);

// printf-style formatting ("%.3f", "%.4g"), as Python's f-strings give for these specs.
std::string Printf(const char* format, double value);

// A JSON value laid out as Python's json.dumps(value, indent=2) does.
class Json {
 public:
  static Json Null() { return Json(Kind::kNull); }
  static Json Bool(bool value);
  static Json Int(int64_t value);
  static Json Float(double value);
  static Json Float(const std::optional<double>& value);
  static Json Str(std::string_view utf8);
  static Json Array();
  static Json Object();

  Json& Append(Json value);                // an array's next item
  Json& Set(std::string key, Json value);  // an object's next member, in order
  std::string Dump(int indent = 0) const;

 private:
  enum class Kind { kNull, kScalar, kArray, kObject };
  explicit Json(Kind kind) : kind_(kind) {}

  Kind kind_;
  std::string scalar_;                               // the literal, for kScalar
  std::vector<std::pair<std::string, Json>> items_;  // keys empty for arrays
};

}  // namespace stars::cli
