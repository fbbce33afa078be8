// A token's log-probability under the policy (the log-softmax of the raw logits row, before
// temperature and truncation, as llama.cpp's server reports it) with the likeliest
// alternatives, and a row's entropy.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace stars {

struct LogprobsOf {
  double logprob = 0.0;                         // of the token drawn
  std::vector<std::pair<int32_t, double>> top;  // the n_top likeliest, likeliest first
};

// Over `n_vocab` logits, for `token`; `n_top` alternatives (0: none). Ties in the top keep the
// lower token id first, so the list does not depend on how the row was scanned.
LogprobsOf TokenLogprobs(const float* logits, int32_t n_vocab, int32_t token, int32_t n_top);

// The entropy (nats) of the softmax of `n_vocab` logits: how unsure the policy is of the next
// token.
double Entropy(const float* logits, int32_t n_vocab);

}  // namespace stars
