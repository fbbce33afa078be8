// Text bookkeeping of responses, on plain strings (no llama.h): UTF-8 boundaries between
// segments, and stop strings.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace stars {

// The length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence, so a
// segment never ends half-way through a character that the next segment completes.
size_t CompleteUtf8Prefix(std::string_view bytes);

// The earliest position in `text` at which a stop string starts, looking only at matches that
// end after `new_from` (text before it was searched already). npos when there is none.
size_t FindStop(std::string_view text, size_t new_from, const std::vector<std::string>& stop);

}  // namespace stars
