// Samples the next token of many candidates at once. Each candidate owns its sampler chain, so
// the draws are independent: splitting them over threads gives the same tokens as one thread.
// On a fast backend the per-token sampling on the CPU (a pass over the whole vocabulary) would
// otherwise serialize behind every batched decode.
#pragma once

#include <cstdint>
#include <vector>

#include "llama.h"
#include "llama/sampler.h"

namespace stars {

struct SamplingJob {
  Sampler* sampler;
  const float* logits;  // n_vocab values, valid until the next decode
  llama_token token = LLAMA_TOKEN_NULL;
};

// Fills every job's token, on up to `n_threads` threads (one when the jobs are few).
void SampleInParallel(std::vector<SamplingJob>& jobs, int32_t n_vocab, int32_t n_threads);

}  // namespace stars
