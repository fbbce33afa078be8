// One llama.cpp sampler chain (top-k, top-p, min-p, temperature, dist; greedy at temperature 0).
#pragma once

#include <cstdint>
#include <vector>

#include "llama.h"
#include "stars/params.h"

namespace stars {

class Sampler {
 public:
  // `key` seeds the dist sampler (an attempt key: algorithm/attempt_key.h).
  Sampler(const SamplingParams& params, uint64_t key);
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

}  // namespace stars
