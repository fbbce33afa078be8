#include "llama/sampler.h"

namespace stars {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint32_t DeriveSeed(uint64_t seed, uint64_t prompt, uint64_t round, uint64_t slot) {
  uint64_t h = SplitMix64(seed);
  h = SplitMix64(h ^ prompt);
  h = SplitMix64(h ^ round);
  h = SplitMix64(h ^ slot);
  // LLAMA_DEFAULT_SEED (0xFFFFFFFF) asks llama.cpp for a random seed; never pass it.
  const uint32_t derived = static_cast<uint32_t>(h >> 32);
  return derived == LLAMA_DEFAULT_SEED ? 0u : derived;
}

Sampler::Sampler(const SamplingParams& params, uint32_t seed) {
  llama_sampler_chain_params chain_params = llama_sampler_chain_default_params();
  chain_params.no_perf = true;
  chain_ = llama_sampler_chain_init(chain_params);
  if (params.temperature <= 0.0f) {
    llama_sampler_chain_add(chain_, llama_sampler_init_greedy());
    return;
  }
  if (params.top_k > 0) llama_sampler_chain_add(chain_, llama_sampler_init_top_k(params.top_k));
  if (params.top_p < 1.0f) {
    llama_sampler_chain_add(chain_, llama_sampler_init_top_p(params.top_p, 1));
  }
  if (params.min_p > 0.0f) {
    llama_sampler_chain_add(chain_, llama_sampler_init_min_p(params.min_p, 1));
  }
  llama_sampler_chain_add(chain_, llama_sampler_init_temp(params.temperature));
  llama_sampler_chain_add(chain_, llama_sampler_init_dist(seed));
}

Sampler::~Sampler() {
  if (chain_ != nullptr) llama_sampler_free(chain_);
}

Sampler::Sampler(Sampler&& other) noexcept : chain_(other.chain_) { other.chain_ = nullptr; }

Sampler& Sampler::operator=(Sampler&& other) noexcept {
  if (this != &other) {
    if (chain_ != nullptr) llama_sampler_free(chain_);
    chain_ = other.chain_;
    other.chain_ = nullptr;
  }
  return *this;
}

llama_token Sampler::SampleFromLogits(const float* logits, int32_t n_vocab,
                                      std::vector<llama_token_data>* scratch) {
  scratch->resize(static_cast<size_t>(n_vocab));
  for (int32_t id = 0; id < n_vocab; ++id) (*scratch)[id] = {id, logits[id], 0.0f};
  llama_token_data_array candidates = {scratch->data(), scratch->size(), -1, false};
  llama_sampler_apply(chain_, &candidates);
  const llama_token token = candidates.data[candidates.selected].id;
  llama_sampler_accept(chain_, token);
  return token;
}

}  // namespace stars
