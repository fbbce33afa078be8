#include "algorithm/response_text.h"

#include <algorithm>

namespace stars {

size_t CompleteUtf8Prefix(std::string_view bytes) {
  const size_t n = bytes.size();
  // A UTF-8 sequence is at most 4 bytes: only the last 3 can start an incomplete one.
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    const unsigned char c = static_cast<unsigned char>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    size_t length = 1;
    if ((c & 0xE0) == 0xC0)
      length = 2;
    else if ((c & 0xF0) == 0xE0)
      length = 3;
    else if ((c & 0xF8) == 0xF0)
      length = 4;
    return length > back ? n - back : n;
  }
  return n;
}

size_t FindStop(std::string_view text, size_t new_from, const std::vector<std::string>& stop) {
  size_t best = std::string_view::npos;
  for (const std::string& s : stop) {
    const size_t from = new_from >= s.size() ? new_from - s.size() + 1 : 0;
    const size_t at = text.find(s, from);
    if (at != std::string_view::npos) best = std::min(best, at);
  }
  return best;
}

}  // namespace stars
