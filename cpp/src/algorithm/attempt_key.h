// Keys that make sampling independent of how work is grouped (no llama.h here). A prompt's key
// comes from its tokens (or an explicit id); attempt j of segment s of that prompt draws its
// tokens and its acceptance u from (seed, prompt key, s, j). So a prompt's output depends neither
// on its position in a batch nor on how attempts are grouped into rounds.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace stars {

// The key of a prompt given by its tokens: the k-th identical prompt of a call passes
// `occurrence` k, so copies differ from each other while the first equals the prompt alone.
uint64_t PromptKeyOfTokens(const std::vector<int32_t>& tokens, uint64_t occurrence);

// The key of a prompt given an explicit id (a dataset record's id, a request's key).
uint64_t PromptKeyOfId(std::string_view id);

// The key of attempt `attempt` (0-based, counting every attempt of the segment) of segment
// `segment` (0-based) of the prompt with key `prompt_key`, for the call's `seed`.
uint64_t AttemptKey(uint64_t seed, uint64_t prompt_key, uint64_t segment, uint64_t attempt);

// The soft acceptance rule's u ~ U[0, 1) for an attempt, from its key: a stream of its own,
// distinct from the one that seeds the attempt's sampler.
double AcceptanceDraw(uint64_t attempt_key);

}  // namespace stars
