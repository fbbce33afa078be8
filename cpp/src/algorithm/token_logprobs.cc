#include "algorithm/token_logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace stars {

LogprobsOf TokenLogprobs(const float* logits, int32_t n_vocab, int32_t token, int32_t n_top) {
  // log-sum-exp about the row's maximum, in double: a float sum over 50k terms loses digits.
  float max = -std::numeric_limits<float>::infinity();
  for (int32_t i = 0; i < n_vocab; ++i) max = std::max(max, logits[i]);
  double sum = 0.0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  const double log_z = static_cast<double>(max) + std::log(sum);
  LogprobsOf out;
  out.logprob = static_cast<double>(logits[token]) - log_z;
  n_top = std::min(n_top, n_vocab);
  if (n_top > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(n_vocab));
    for (int32_t i = 0; i < n_vocab; ++i) ids[static_cast<size_t>(i)] = i;
    const auto likelier = [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    };
    std::partial_sort(ids.begin(), ids.begin() + n_top, ids.end(), likelier);
    for (int32_t k = 0; k < n_top; ++k) {
      const int32_t id = ids[static_cast<size_t>(k)];
      out.top.emplace_back(id, static_cast<double>(logits[id]) - log_z);
    }
  }
  return out;
}

double Entropy(const float* logits, int32_t n_vocab) {
  // H = log S - sum(w_i * (l_i - max)) / S with w_i = exp(l_i - max) and S their sum.
  float max = -std::numeric_limits<float>::infinity();
  for (int32_t i = 0; i < n_vocab; ++i) max = std::max(max, logits[i]);
  double sum = 0.0;
  double weighted = 0.0;
  for (int32_t i = 0; i < n_vocab; ++i) {
    const double shifted = static_cast<double>(logits[i]) - max;
    const double w = std::exp(shifted);
    if (w == 0.0) continue;  // a masked token (-inf) adds nothing
    sum += w;
    weighted += w * shifted;
  }
  return std::log(sum) - weighted / sum;
}

}  // namespace stars
