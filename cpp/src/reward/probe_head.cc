#include "reward/probe_head.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "stars/errors.h"

namespace stars {
namespace {

std::string SizeProblem(const char* name, size_t got, int64_t want) {
  if (static_cast<int64_t>(got) == want) return "";
  return std::string(name) + " has " + std::to_string(got) + " values, expected " +
         std::to_string(want);
}

bool AllFinite(const std::vector<float>& values) {
  for (float v : values) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

}  // namespace

std::string ProbeHeadProblem(const ProbeHeadParams& p) {
  if (p.n_in < 1) return "the head has " + std::to_string(p.n_in) + " inputs";
  if (p.n_hidden < 0) return "the head has " + std::to_string(p.n_hidden) + " hidden units";
  const int64_t n_in = p.n_in;
  const int64_t n_hidden = p.n_hidden;
  for (const std::string& problem :
       {SizeProblem("mean", p.mean.size(), n_in), SizeProblem("std", p.std.size(), n_in),
        SizeProblem("hidden_weight", p.hidden_weight.size(), n_hidden * n_in),
        SizeProblem("hidden_bias", p.hidden_bias.size(), n_hidden),
        SizeProblem("weight", p.weight.size(), n_hidden > 0 ? n_hidden : n_in)}) {
    if (!problem.empty()) return problem;
  }
  const std::pair<const char*, const std::vector<float>*> arrays[] = {
      {"mean", &p.mean},
      {"std", &p.std},
      {"hidden_weight", &p.hidden_weight},
      {"hidden_bias", &p.hidden_bias},
      {"weight", &p.weight}};
  for (const auto& [name, values] : arrays) {
    if (!AllFinite(*values)) return std::string(name) + " holds a value that is not finite";
  }
  for (float s : p.std) {
    if (!(s > 0.0f)) return "std holds a value that is not positive";
  }
  if (!std::isfinite(p.bias) || !std::isfinite(p.output_scale) || !std::isfinite(p.output_offset)) {
    return "the bias, output scale or output offset is not finite";
  }
  return "";
}

ProbeHead::ProbeHead(ProbeHeadParams params) : params_(std::move(params)) {
  const std::string problem = ProbeHeadProblem(params_);
  if (!problem.empty()) throw ParameterError("probe head: " + problem);
  inv_std_.resize(params_.std.size());
  for (size_t i = 0; i < inv_std_.size(); ++i) inv_std_[i] = 1.0 / params_.std[i];
}

double ProbeHead::Score(const float* features) const {
  const ProbeHeadParams& p = params_;
  const size_t n_in = static_cast<size_t>(p.n_in);
  std::vector<double> z(n_in);
  for (size_t i = 0; i < n_in; ++i) z[i] = (features[i] - p.mean[i]) * inv_std_[i];
  double out = p.bias;
  if (p.n_hidden == 0) {
    for (size_t i = 0; i < n_in; ++i) out += p.weight[i] * z[i];
  } else {
    for (size_t h = 0; h < static_cast<size_t>(p.n_hidden); ++h) {
      const float* row = p.hidden_weight.data() + h * n_in;
      double a = p.hidden_bias[h];
      for (size_t i = 0; i < n_in; ++i) a += row[i] * z[i];
      a = p.activation == ProbeActivation::kRelu ? std::max(a, 0.0) : std::tanh(a);
      out += p.weight[h] * a;
    }
  }
  return static_cast<double>(p.output_offset) + static_cast<double>(p.output_scale) * out;
}

}  // namespace stars
