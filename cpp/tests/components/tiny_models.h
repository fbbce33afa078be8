// What the component tests share: the tiny F32 GGUFs they run on (write_tiny_models.py writes
// them into the directory that STARS_TEST_MODELS names; CTest's tiny_models fixture does), and
// from-scratch decoding to compare cached paths against.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llama.h"
#include "stars/model.h"
#include "stars/params.h"

namespace stars_test {

// Threads of every context the tests make: one, so that a machine busy with other work does not
// leave ggml's threads spinning at barriers (a tiny model's decode is microseconds of work).
inline constexpr int32_t kThreads = 1;

// $STARS_TEST_MODELS/name. Throws std::runtime_error (the test fails) when the variable is unset
// or the file is missing.
std::string TinyModelPath(const std::string& name);

// tiny-llama.gguf, loaded once per process.
std::shared_ptr<stars::Model> TinyLlama();

// The logits after `tokens`, decoded alone in a fresh context of `layout` (n_ctx 256, one
// sequence, n_batch and n_ubatch as given; 0: the context's defaults).
std::vector<float> ScratchLogits(const std::shared_ptr<stars::Model>& model,
                                 const std::vector<llama_token>& tokens, stars::KvLayout layout,
                                 int32_t n_batch = 0, int32_t n_ubatch = 0);

// max |a - b| / max |b|.
double RelMaxAbs(const std::vector<float>& a, const std::vector<float>& b);

// Text tokens of the tiny vocabulary (no BOS).
std::vector<llama_token> Tokens(const stars::Model& model, const std::string& text);

// Both KV layouts, for parameterized tests, and their names for test names.
const std::vector<stars::KvLayout>& Layouts();
std::string LayoutName(stars::KvLayout layout);

}  // namespace stars_test
