#include "llama/sampler.h"

#include <cstring>

namespace stars {
namespace {

// llama.cpp's dist sampler takes a 32-bit seed, and LLAMA_DEFAULT_SEED asks it for a random one:
// fold the 64-bit key and never pass that value.
uint32_t SeedOf(uint64_t key) {
  const uint32_t seed = static_cast<uint32_t>(key >> 32) ^ static_cast<uint32_t>(key);
  return seed == LLAMA_DEFAULT_SEED ? 0u : seed;
}

}  // namespace

Sampler::Sampler(const SamplingParams& params, uint64_t key, int32_t n_vocab) {
  llama_sampler_chain_params chain_params = llama_sampler_chain_default_params();
  chain_params.no_perf = true;
  chain_ = llama_sampler_chain_init(chain_params);
  // First, as in llama.cpp's common sampler: the penalty moves logits before any truncation.
  if (params.repeat_penalty != 1.0f) {
    llama_sampler_chain_add(chain_, llama_sampler_init_penalties(
                                        n_vocab, kRepeatLastN, params.repeat_penalty, 0.0f, 0.0f));
  }
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
  if (params.typical_p < 1.0f) {
    llama_sampler_chain_add(chain_, llama_sampler_init_typical(params.typical_p, 1));
  }
  llama_sampler_chain_add(chain_, llama_sampler_init_temp(params.temperature));
  llama_sampler_chain_add(chain_, llama_sampler_init_dist(SeedOf(key)));
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

void Sampler::Prime(const std::vector<llama_token>& history) {
  const size_t from = history.size() > kRepeatLastN ? history.size() - kRepeatLastN : 0;
  for (size_t i = from; i < history.size(); ++i) llama_sampler_accept(chain_, history[i]);
}

Sampler Sampler::Clone() const { return Sampler(llama_sampler_clone(chain_)); }

bool Sampler::backend_capable() const {
  const int n = llama_sampler_chain_n(chain_);
  for (int i = 0; i < n; ++i) {
    const llama_sampler* sampler = llama_sampler_chain_get(chain_, i);
    if (sampler->iface->backend_init == nullptr || sampler->iface->backend_apply == nullptr) {
      return false;
    }
    // llama.cpp's backend penalties count no drawn token (greedy draws with a penalty differed
    // from the host's on the tiny test model): the chain stays on the host.
    if (std::strcmp(llama_sampler_name(sampler), "penalties") == 0) return false;
  }
  return n > 0;
}

}  // namespace stars
