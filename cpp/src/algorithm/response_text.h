// Text bookkeeping of responses, on plain strings (no llama.h): UTF-8 boundaries between
// segments, and stop strings matched across them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stars {

// The length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence, so a
// segment never ends half-way through a character that the next segment completes.
size_t CompleteUtf8Prefix(std::string_view bytes);

// The earliest stop string in the response `trunk + segment` that ends after byte `new_from` of
// `segment` (the bytes before it were searched already). Returns its start relative to the
// segment: negative when it starts in the trunk, i.e. spans the boundary. nullopt when none.
std::optional<std::ptrdiff_t> FindStop(std::string_view trunk, std::string_view segment,
                                       size_t new_from, const std::vector<std::string>& stop);

// How much of `text` may be shown: up to the start of its longest suffix that is a proper
// prefix of a stop string (the next segment may complete it), and never inside a UTF-8
// character. The rest is held back until the response grows or ends.
size_t ShowablePrefix(std::string_view text, const std::vector<std::string>& stop);

}  // namespace stars
