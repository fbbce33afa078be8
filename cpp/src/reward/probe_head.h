// A probe's head in plain numbers (ProbeHeadParams, stars/probe.h): features (a policy's hidden
// state) in, one score out. No llama.cpp here, so that cpp/tests unit-tests it alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stars/probe.h"

namespace stars {

// What is wrong with `params` (a size that does not match, a value that is not finite, a std
// that is not positive), or "" when nothing is.
std::string ProbeHeadProblem(const ProbeHeadParams& params);

class ProbeHead {
 public:
  // Throws ParameterError when ProbeHeadProblem finds a problem.
  explicit ProbeHead(ProbeHeadParams params);

  // The score of `features` (n_in floats), accumulated in double. Safe from several threads.
  double Score(const float* features) const;

  const ProbeHeadParams& params() const { return params_; }
  int32_t n_in() const { return params_.n_in; }

 private:
  ProbeHeadParams params_;
  std::vector<double> inv_std_;  // 1 / std, once
};

}  // namespace stars
