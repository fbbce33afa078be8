// How wide a prompt's next round is (no llama.h here). Attempts are keyed, so the width changes
// no output, only the cost: a wide round wastes the candidates after the accepted one, a narrow
// one pays a decode step per token for fewer sequences. The width chosen minimises the expected
// seconds until the segment is chosen (accepted, or the fallback after max_attempts).
#pragma once

#include <cstdint>
#include <functional>

namespace stars {

// The estimated probability that one attempt is accepted: the prompt's accepted segments over
// its considered attempts so far (the maximum-likelihood estimate), kUnseenAcceptance when
// nothing was seen yet.
double EstimateAcceptance(int64_t accepted, int64_t considered);

// The acceptance rate assumed before a prompt's first decision: even odds, so that a first round
// is wide only where a wide round costs little more than a narrow one.
inline constexpr double kUnseenAcceptance = 0.5;

// Expected seconds until a segment is chosen when every round samples `width` candidates (fewer
// in the last, to stay within `attempts_left`), each accepted with probability `p`
// independently, and a round of n candidates costs round_seconds(n).
double ExpectedSecondsToSegment(int32_t width, int32_t attempts_left, double p,
                                const std::function<double(int32_t)>& round_seconds);

// The width in [1, max_width] with the least expected seconds; ties go to the narrower one.
// Requires 1 <= max_width <= attempts_left.
int32_t ChooseRoundWidth(int32_t max_width, int32_t attempts_left, double p,
                         const std::function<double(int32_t)>& round_seconds);

}  // namespace stars
