// One llama.cpp sampler chain (top-k, top-p, min-p, temperature, dist; greedy at temperature 0).
#pragma once

#include <cstdint>
#include <vector>

#include "llama.h"
#include "stars/params.h"

namespace stars {

class Sampler {
 public:
  Sampler(const SamplingParams& params, uint32_t seed);
  ~Sampler();
  Sampler(Sampler&& other) noexcept;
  Sampler& operator=(Sampler&& other) noexcept;
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // Samples from a saved logits row. `scratch` is reused across calls to avoid an allocation.
  llama_token SampleFromLogits(const float* logits, int32_t n_vocab,
                               std::vector<llama_token_data>* scratch);

 private:
  llama_sampler* chain_ = nullptr;
};

// A seed for slot `slot` of round `round` of prompt `prompt`, mixed from the call's seed so that
// every candidate draws from its own stream and results do not depend on batch composition.
uint32_t DeriveSeed(uint64_t seed, uint64_t prompt, uint64_t round, uint64_t slot);

}  // namespace stars
