#include "tiny_models.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "llama/batch_runner.h"
#include "llama/context.h"
#include "llama/sequence_pool.h"
#include "stars/log.h"

namespace stars_test {

std::string TinyModelPath(const std::string& name) {
  const char* dir = std::getenv("STARS_TEST_MODELS");
  if (dir == nullptr || *dir == '\0') {
    throw std::runtime_error(
        "STARS_TEST_MODELS is unset: run these tests with ctest (its tiny_models fixture writes "
        "the models), or write them with cpp/tests/components/write_tiny_models.py DIR and set "
        "STARS_TEST_MODELS=DIR");
  }
  const std::string path = std::string(dir) + "/" + name;
  if (!std::ifstream(path).good()) {
    throw std::runtime_error(path + " is missing: write it with write_tiny_models.py");
  }
  return path;
}

std::shared_ptr<stars::Model> TinyLlama() {
  static const std::shared_ptr<stars::Model> model =
      stars::Model::Load(TinyModelPath("tiny-llama.gguf"), 0);
  return model;
}

std::vector<float> ScratchLogits(const std::shared_ptr<stars::Model>& model,
                                 const std::vector<llama_token>& tokens, stars::KvLayout layout,
                                 int32_t n_batch, int32_t n_ubatch) {
  stars::ContextOptions options;
  options.n_ctx = 256;
  options.layout = layout;
  options.n_batch = n_batch;
  options.n_ubatch = n_ubatch;
  options.n_threads = kThreads;
  stars::Context context(model, options);
  stars::SequencePool pool(context);
  stars::BatchRunner runner(context, &pool);
  const llama_seq_id seq = pool.Acquire();
  std::vector<float> logits;
  runner.Run({{seq, 0, tokens.data(), static_cast<int32_t>(tokens.size()), true}},
             [&](const stars::DecodedView& view) {
               const float* row = context.Logits(view.outputs.at(0).batch_index);
               logits.assign(row, row + model->n_vocab());
             });
  return logits;
}

double RelMaxAbs(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || b.empty()) return INFINITY;
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

std::vector<llama_token> Tokens(const stars::Model& model, const std::string& text) {
  return model.Tokenize(text, false, false);
}

const std::vector<stars::KvLayout>& Layouts() {
  static const std::vector<stars::KvLayout> layouts = {stars::KvLayout::kShared,
                                                       stars::KvLayout::kIsolated};
  return layouts;
}

std::string LayoutName(stars::KvLayout layout) { return stars::KvLayoutName(layout); }

}  // namespace stars_test

int main(int argc, char** argv) {
  // llama.cpp's log is queued, not printed; nothing is queued below this threshold.
  stars::InstallLog(static_cast<int>(stars::LogLevel::kError) + 1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
