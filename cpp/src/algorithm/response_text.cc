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

std::optional<std::ptrdiff_t> FindStop(std::string_view trunk, std::string_view segment,
                                       size_t new_from, const std::vector<std::string>& stop) {
  std::optional<std::ptrdiff_t> best;
  auto keep = [&best](std::ptrdiff_t at) {
    if (!best || at < *best) best = at;
  };
  for (const std::string& s : stop) {
    const size_t from = new_from >= s.size() ? new_from - s.size() + 1 : 0;
    const size_t at = segment.find(s, from);
    if (at != std::string_view::npos) keep(static_cast<std::ptrdiff_t>(at));
    // Matches that start k bytes before the segment: the trunk ends with s[:k], the segment
    // starts with s[k:]. Only those completed by the new bytes are new.
    for (size_t k = std::min(s.size() - 1, trunk.size()); k >= 1; --k) {
      const size_t rest = s.size() - k;
      if (rest > segment.size() || rest <= new_from) continue;
      if (trunk.substr(trunk.size() - k) == std::string_view(s).substr(0, k) &&
          segment.substr(0, rest) == std::string_view(s).substr(k)) {
        keep(-static_cast<std::ptrdiff_t>(k));
        break;  // the largest k is the earliest start
      }
    }
  }
  return best;
}

size_t ShowablePrefix(std::string_view text, const std::vector<std::string>& stop) {
  size_t showable = CompleteUtf8Prefix(text);
  for (const std::string& s : stop) {
    for (size_t k = std::min(s.size() - 1, text.size()); k >= 1; --k) {
      if (text.substr(text.size() - k) == std::string_view(s).substr(0, k)) {
        showable = std::min(showable, text.size() - k);
        break;
      }
    }
  }
  return showable;
}

}  // namespace stars
