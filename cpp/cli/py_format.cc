#include "py_format.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace stars::cli {
namespace {

// Code points of UTF-8 text; each invalid byte becomes U+FFFD, as Python's "replace" gives
// for the usual cases (a character cut at a segment boundary).
std::vector<uint32_t> Decode(std::string_view s) {
  std::vector<uint32_t> out;
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    int n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
    uint32_t cp = n == 1 ? b : n == 2 ? b & 0x1f : n == 3 ? b & 0x0f : b & 0x07;
    bool ok = n > 0 && i + n <= s.size();
    for (int k = 1; ok && k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      ok = (c >> 6) == 0x2;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (ok && n > 1) {
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[n] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (!ok) {
      out.push_back(0xfffd);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += static_cast<size_t>(n);
  }
  return out;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

std::string Hex(const char* format, uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), format, value);
  return buffer;
}

std::string JsonString(std::string_view utf8) {
  std::string out = "\"";
  for (uint32_t cp : Decode(utf8)) {
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
          out += Hex("\\u%04x", cp);
        } else {  // a surrogate pair, as ensure_ascii writes it
          const uint32_t v = cp - 0x10000;
          out += Hex("\\u%04x", 0xd800 | (v >> 10)) + Hex("\\u%04x", 0xdc00 | (v & 0x3ff));
        }
    }
  }
  return out + "\"";
}

}  // namespace

std::string PyFloat(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  const auto done =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  const std::string sci(buffer, done.ptr);  // "-d.ddde+XX", shortest round-trip digits
  const size_t e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exponent = std::atoi(sci.c_str() + e + 1);
  const bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exponent + 1) {
      out += digits + std::string(static_cast<size_t>(exponent + 1) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exponent + 1)) + "." +
             digits.substr(static_cast<size_t>(exponent + 1));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exp[16];
  std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out + exp;
}

std::string PyStr(std::string_view utf8) {
  const std::vector<uint32_t> cps = Decode(utf8);
  bool single = false, dbl = false;
  for (uint32_t cp : cps) {
    single = single || cp == '\'';
    dbl = dbl || cp == '"';
  }
  const char quote = single && !dbl ? '"' : '\'';
  std::string out(1, quote);
  for (uint32_t cp : cps) {
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
      out += Hex("\\x%02x", cp);
    } else {
      AppendUtf8(out, cp);
    }
  }
  out.push_back(quote);
  return out;
}

std::string Printf(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), format, value);
  return buffer;
}

Json Json::Bool(bool value) {
  Json json(Kind::kScalar);
  json.scalar_ = value ? "true" : "false";
  return json;
}

Json Json::Int(int64_t value) {
  Json json(Kind::kScalar);
  json.scalar_ = std::to_string(value);
  return json;
}

Json Json::Float(double value) {
  Json json(Kind::kScalar);
  // json.dumps writes Python's repr, and these two names for non-finite values.
  json.scalar_ = std::isnan(value)   ? "NaN"
                 : std::isinf(value) ? (value > 0 ? "Infinity" : "-Infinity")
                                     : PyFloat(value);
  return json;
}

Json Json::Float(const std::optional<double>& value) { return value ? Float(*value) : Null(); }

Json Json::Str(std::string_view utf8) {
  Json json(Kind::kScalar);
  json.scalar_ = JsonString(utf8);
  return json;
}

Json Json::Array() { return Json(Kind::kArray); }
Json Json::Object() { return Json(Kind::kObject); }

Json& Json::Append(Json value) {
  items_.emplace_back(std::string(), std::move(value));
  return *this;
}

Json& Json::Set(std::string key, Json value) {
  items_.emplace_back(std::move(key), std::move(value));
  return *this;
}

std::string Json::Dump(int indent) const {
  switch (kind_) {
    case Kind::kNull:
      return "null";
    case Kind::kScalar:
      return scalar_;
    case Kind::kArray:
    case Kind::kObject: {
      const bool object = kind_ == Kind::kObject;
      if (items_.empty()) return object ? "{}" : "[]";
      const std::string pad(static_cast<size_t>(indent + 2), ' ');
      std::string out = object ? "{\n" : "[\n";
      for (size_t i = 0; i < items_.size(); ++i) {
        out += pad;
        if (object) out += JsonString(items_[i].first) + ": ";
        out += items_[i].second.Dump(indent + 2);
        out += i + 1 < items_.size() ? ",\n" : "\n";
      }
      return out + std::string(static_cast<size_t>(indent), ' ') + (object ? "}" : "]");
    }
  }
  return "null";
}

}  // namespace stars::cli
