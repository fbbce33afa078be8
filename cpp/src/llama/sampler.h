// One llama.cpp sampler chain (top-k, top-p, min-p, typical, temperature, dist; greedy at
// temperature 0), drawn on the host or attached to a sequence for llama.cpp's backend sampling.
#pragma once

#include <cstdint>
#include <vector>

#include "llama.h"
#include "stars/params.h"

namespace stars {

class Sampler {
 public:
  // `key` seeds the dist sampler (an attempt key: algorithm/attempt_key.h); `n_vocab` is the
  // model's (the repetition penalty's table).
  Sampler(const SamplingParams& params, uint64_t key, int32_t n_vocab);
  ~Sampler();
  Sampler(Sampler&& other) noexcept;
  Sampler& operator=(Sampler&& other) noexcept;
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // Samples from a saved logits row. `scratch` is reused across calls to avoid an allocation.
  llama_token SampleFromLogits(const float* logits, int32_t n_vocab,
                               std::vector<llama_token_data>* scratch);

  // Feeds the chain the last kRepeatLastN tokens of `history` (the accepted response), as if it
  // had drawn them: a repetition penalty then counts them.
  void Prime(const std::vector<llama_token>& history);

  // A new chain in this one's state (its random stream where this one's stands), not attached.
  Sampler Clone() const;

  // True when every sampler of the chain has a backend implementation in llama.cpp that draws
  // what the host would, so that the chain can be attached to a sequence
  // (SequencePool::AttachSampler). Not with a repetition penalty.
  bool backend_capable() const;

  llama_sampler* get() const { return chain_; }

 private:
  explicit Sampler(llama_sampler* chain) : chain_(chain) {}

  llama_sampler* chain_ = nullptr;
};

}  // namespace stars
