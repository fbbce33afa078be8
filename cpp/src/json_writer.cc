#include "stars/json_writer.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace stars {
namespace {

// The code point at text[*i], advancing *i past it. An invalid sequence gives U+FFFD for its
// longest valid prefix (at least one byte), as Python's "replace" does, so that a character
// cut at a segment boundary reads the same here and in the bindings' str.
uint32_t NextCodePoint(std::string_view text, size_t* i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(*i);
  ++*i;
  if (lead < 0x80) return lead;
  int more;
  uint32_t cp;
  unsigned char low = 0x80, high = 0xbf;  // the allowed range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    more = 1;
    cp = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    more = 2;
    cp = lead & 0x0f;
    if (lead == 0xe0) low = 0xa0;   // no overlong forms
    if (lead == 0xed) high = 0x9f;  // no surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    more = 3;
    cp = lead & 0x07;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;  // nothing past U+10FFFF
  } else {
    return 0xfffd;
  }
  for (int k = 0; k < more; ++k) {
    if (*i >= text.size() || byte(*i) < low || byte(*i) > high) return 0xfffd;
    cp = (cp << 6) | (byte(*i) & 0x3f);
    ++*i;
    low = 0x80;
    high = 0xbf;
  }
  return cp;
}

void AppendEscape(std::string& out, uint32_t unit) {
  char buffer[8];
  std::snprintf(buffer, sizeof(buffer), "\\u%04x", unit);
  out += buffer;
}

}  // namespace

std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  char buffer[32];
  const auto done = std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string out(buffer, done.ptr);
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

std::string JsonString(std::string_view utf8) {
  std::string out = "\"";
  for (size_t i = 0; i < utf8.size();) {
    const uint32_t cp = NextCodePoint(utf8, &i);
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (cp >= 0x20 && cp < 0x7f) {
          out.push_back(static_cast<char>(cp));
        } else if (cp < 0x10000) {
          AppendEscape(out, cp);
        } else {  // a surrogate pair
          AppendEscape(out, 0xd800 | ((cp - 0x10000) >> 10));
          AppendEscape(out, 0xdc00 | ((cp - 0x10000) & 0x3ff));
        }
    }
  }
  return out + "\"";
}

JsonWriter& JsonWriter::Key(std::string_view name) {
  BeforeValue();
  out_ += JsonString(name);
  out_ += indent_ > 0 ? ": " : ":";
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::Number(const std::optional<double>& value) {
  return value ? Number(*value) : Null();
}

JsonWriter& JsonWriter::Open(char bracket) {
  BeforeValue();
  out_.push_back(bracket);
  counts_.push_back(0);
  return *this;
}

JsonWriter& JsonWriter::Close(char bracket) {
  const bool empty = counts_.back() == 0;
  counts_.pop_back();
  if (!empty) Newline(counts_.size());
  out_.push_back(bracket);
  return *this;
}

JsonWriter& JsonWriter::Scalar(const std::string& literal) {
  BeforeValue();
  out_ += literal;
  return *this;
}

void JsonWriter::BeforeValue() {
  if (after_key_) {  // a member's value follows its key on the same line
    after_key_ = false;
    return;
  }
  if (counts_.empty()) return;
  if (counts_.back()++ > 0) out_.push_back(',');
  Newline(counts_.size());
}

void JsonWriter::Newline(size_t depth) {
  if (indent_ <= 0) return;
  out_.push_back('\n');
  out_.append(depth * static_cast<size_t>(indent_), ' ');
}

}  // namespace stars
