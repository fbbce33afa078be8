// A JSON text written value by value, for what stars_cpp prints (the Result, stars-cli bench).
// The output is ASCII whatever the text holds, so it reads the same on any terminal encoding.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stars {

// The shortest decimal that reads back as the same double (std::to_chars), with ".0" added
// when it would read back as an integer; "null" for NaN and infinities, which JSON lacks.
std::string JsonNumber(double value);

// A JSON string literal of UTF-8 text: each invalid sequence becomes U+FFFD (as Python's
// errors="replace" decodes it), and everything but printable ASCII is \u-escaped.
std::string JsonString(std::string_view utf8);

// Values go in document order: Begin/End for containers, Key before each member's value.
class JsonWriter {
 public:
  // indent: spaces per level, one member or item a line; 0 writes one line with no spaces.
  explicit JsonWriter(int indent = 2) : indent_(indent) {}

  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }
  JsonWriter& Key(std::string_view name);

  JsonWriter& Null() { return Scalar("null"); }
  JsonWriter& Bool(bool value) { return Scalar(value ? "true" : "false"); }
  JsonWriter& Int(int64_t value) { return Scalar(std::to_string(value)); }
  JsonWriter& Number(double value) { return Scalar(JsonNumber(value)); }
  JsonWriter& Number(const std::optional<double>& value);
  JsonWriter& String(std::string_view utf8) { return Scalar(JsonString(utf8)); }

  const std::string& text() const { return out_; }

 private:
  JsonWriter& Open(char bracket);
  JsonWriter& Close(char bracket);
  JsonWriter& Scalar(const std::string& literal);
  void BeforeValue();  // the separator and line break that precede a value
  void Newline(size_t depth);

  int indent_;
  std::string out_;
  std::vector<size_t> counts_;  // values written so far in each open container
  bool after_key_ = false;
};

}  // namespace stars
