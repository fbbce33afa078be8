// Unit tests (GoogleTest) of a probe's head: normalisation, the linear and MLP heads, the
// output scale and offset, and the checks a probe file's head goes through before use.
#include "reward/probe_head.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "stars/errors.h"

namespace {

using stars::ProbeActivation;
using stars::ProbeHead;
using stars::ProbeHeadParams;
using stars::ProbeHeadProblem;

ProbeHeadParams Linear() {
  ProbeHeadParams p;
  p.n_in = 3;
  p.mean = {1.0f, 0.0f, -1.0f};
  p.std = {2.0f, 1.0f, 0.5f};
  p.weight = {0.5f, -1.0f, 2.0f};
  p.bias = 0.25f;
  return p;
}

TEST(ProbeHead, LinearNormalisesThenScalesAndOffsets) {
  ProbeHeadParams p = Linear();
  p.output_scale = 3.0f;
  p.output_offset = -1.0f;
  const ProbeHead head(p);
  const float x[3] = {3.0f, 2.0f, 0.0f};
  // z = (1, 2, 2); 0.25 + 0.5 - 2 + 4 = 2.75; -1 + 3 * 2.75 = 7.25
  EXPECT_DOUBLE_EQ(head.Score(x), 7.25);
}

TEST(ProbeHead, MlpAppliesItsActivation) {
  ProbeHeadParams p;
  p.n_in = 2;
  p.n_hidden = 2;
  p.mean = {0.0f, 0.0f};
  p.std = {1.0f, 1.0f};
  p.hidden_weight = {1.0f, 1.0f, 1.0f, -1.0f};  // h0 = x0 + x1, h1 = x0 - x1
  p.hidden_bias = {0.0f, -0.5f};
  p.weight = {2.0f, 1.0f};
  p.bias = 0.5f;
  const float x[2] = {1.0f, 2.0f};  // h = (3, -1.5)
  p.activation = ProbeActivation::kRelu;
  EXPECT_DOUBLE_EQ(ProbeHead(p).Score(x), 0.5 + 2.0 * 3.0);
  p.activation = ProbeActivation::kTanh;
  EXPECT_NEAR(ProbeHead(p).Score(x), 0.5 + 2.0 * std::tanh(3.0) + std::tanh(-1.5), 1e-12);
}

TEST(ProbeHead, LinearEqualsAFoldedDotProduct) {
  // A linear head is w' . x + b' with w' = w / std and b' = b - w' . mean: checks the order of
  // normalisation on random values.
  ProbeHeadParams p;
  p.n_in = 64;
  for (int i = 0; i < 64; ++i) {
    p.mean.push_back(std::sin(i * 1.3f));
    p.std.push_back(0.5f + std::fabs(std::cos(i * 0.7f)));
    p.weight.push_back(std::sin(i * 0.11f + 1.0f));
  }
  p.bias = -0.3f;
  const ProbeHead head(p);
  std::vector<float> x(64);
  double folded = p.bias;
  for (int i = 0; i < 64; ++i) {
    x[i] = std::cos(i * 0.37f) * 3.0f;
    folded += (static_cast<double>(p.weight[i]) / p.std[i]) * (x[i] - p.mean[i]);
  }
  EXPECT_NEAR(head.Score(x.data()), folded, 1e-9);
}

TEST(ProbeHead, ProblemsAreNamed) {
  ProbeHeadParams p = Linear();
  EXPECT_EQ(ProbeHeadProblem(p), "");
  p.weight.pop_back();
  EXPECT_NE(ProbeHeadProblem(p).find("weight has 2 values, expected 3"), std::string::npos);
  p = Linear();
  p.std[1] = 0.0f;
  EXPECT_NE(ProbeHeadProblem(p).find("not positive"), std::string::npos);
  p = Linear();
  p.mean[0] = NAN;
  EXPECT_NE(ProbeHeadProblem(p).find("mean holds a value that is not finite"), std::string::npos);
  p = Linear();
  p.n_hidden = 2;  // hidden tensors missing, weight of n_in values
  EXPECT_NE(ProbeHeadProblem(p).find("hidden_weight has 0 values, expected 6"), std::string::npos);
  p = Linear();
  p.output_scale = INFINITY;
  EXPECT_NE(ProbeHeadProblem(p), "");
  p = Linear();
  p.n_in = 0;
  EXPECT_NE(ProbeHeadProblem(p), "");
}

TEST(ProbeHead, ConstructorRefusesABadHead) {
  ProbeHeadParams p = Linear();
  p.mean.clear();
  EXPECT_THROW(ProbeHead{p}, stars::ParameterError);
}

}  // namespace
