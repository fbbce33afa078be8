// Probes: rewards read off the policy's own hidden state by a small head (linear, or one hidden
// layer), stored in a small GGUF probe file that names the policy it was fitted on.
//
// The convention: the feature of a response y to a prompt x is the policy's hidden state at the
// last token it decodes for x + y, which is y's second-to-last token (the engine never decodes a
// candidate's last sampled token); for a y of at most one token, the prompt's last token. So the
// input decoded is tokens(x) + tokens(y)[:-1], and the feature is its last token's output row.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "stars/model.h"
#include "stars/params.h"
#include "stars/rewards.h"

namespace stars {

enum class ProbeActivation { kRelu, kTanh };

// The head's parameters. Linear (n_hidden 0): score = output_offset + output_scale * (bias +
// weight . z); MLP: score = output_offset + output_scale * (bias + weight . act(hidden_weight z
// + hidden_bias)); z = (features - mean) / std, per feature.
struct ProbeHeadParams {
  int32_t n_in = 0;                                     // features (the policy's n_embd)
  int32_t n_hidden = 0;                                 // 0: a linear head
  ProbeActivation activation = ProbeActivation::kRelu;  // MLP only
  std::vector<float> mean;                              // n_in
  std::vector<float> std;                               // n_in, each finite and > 0
  std::vector<float> hidden_weight;  // n_hidden x n_in, row-major (one row per hidden unit)
  std::vector<float> hidden_bias;    // n_hidden
  std::vector<float> weight;         // n_hidden, or n_in for a linear head
  float bias = 0.0f;
  float output_scale = 1.0f;
  float output_offset = 0.0f;
};

// What identifies the policy a probe was fitted on: its architecture and sizes, and the FNV-1a
// 64 hash of the raw bytes of its token_embd.weight tensor in its GGUF file.
struct PolicyIdentity {
  std::string architecture;
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  uint64_t token_embd_hash = 0;
  std::string name;  // the policy's file name when fitted, for messages only
};

// A probe file's contents. `layer` is where the features come from: n_layer is the last
// layer's output (llama.cpp's normed embeddings output), 0 <= l < n_layer the input of layer l.
struct ProbeFile {
  int32_t layer = 0;
  ProbeHeadParams head;
  PolicyIdentity policy;
};

// Reads a probe file, checking every size and value before use. Throws ModelNotFoundError for
// a missing file and ModelLoadError naming the file for a truncated, corrupt or wrong-shaped one.
ProbeFile ReadProbeFile(const std::string& path);

// Writes `probe` to `path`. Throws ParameterError for a head that does not check out, and Error
// when the file cannot be written.
void WriteProbeFile(const std::string& path, const ProbeFile& probe);

// The identity of `model`, read from its GGUF file (model.path()). Throws ModelLoadError when
// the file is unknown or has no token_embd.weight.
PolicyIdentity IdentifyPolicy(const Model& model);

// The policy's tokens of a prompt as the engine renders it: `messages` through the model's chat
// template when not empty, else `text` as it is (BOS added as the model wants).
std::vector<int32_t> PromptTokens(const Model& model, const std::string& text,
                                  const std::vector<ChatMessage>& messages);

// Reads the policy's hidden states at the last token of inputs, in batched decodes on a context
// of its own (embeddings on, pooling NONE, one KV pool shared by the rows of a batch).
class FeatureExtractor {
 public:
  virtual ~FeatureExtractor() = default;
  // One row of n_embd floats per input, the output at the input's last token. Throws
  // ParameterError for an empty input or a token outside the vocabulary, DecodeError when
  // llama.cpp fails. `on_rows(done)` is told how many inputs are done after each batch.
  virtual std::vector<float> Extract(const std::vector<std::vector<int32_t>>& inputs,
                                     const std::function<void(size_t)>& on_rows = {}) = 0;
  virtual int32_t layer() const = 0;
  virtual int32_t n_embd() const = 0;
  // Tokens decoded since creation.
  virtual int64_t tokens_decoded() const = 0;
};

// Throws ParameterError naming the layer when it is outside [0, n_layer], or when the model's
// graph in llama.cpp does not expose that layer's input (layers below n_layer).
// `kv_type`: the cache's type, the engine's by default, so that features match what it reads.
std::unique_ptr<FeatureExtractor> MakeFeatureExtractor(std::shared_ptr<Model> policy, int32_t layer,
                                                       int32_t n_threads = 0,
                                                       KvType kv_type = KvType::kF16);

// The input a probe decodes for (prompt, response) token ids: prompt + response[:-1].
std::vector<int32_t> ProbeInput(const std::vector<int32_t>& prompt,
                                const std::vector<int32_t>& response);

struct ProbeOptions {
  // How Begin's prompt text and ScoreTexts' prompts are rendered: as a user chat message (the
  // engine's rendering of chat prompts, `stars-cpp generate`'s default) or as plain text. The
  // engine can give a request's own tokens (Reward::BeginTokens) instead.
  bool chat = true;
  int32_t n_threads = 0;
  KvType kv_type = KvType::kF16;  // the from-scratch context's cache (the engine's type)
};

// A probe as a reward. With RewardRow::features set (the engine's hidden state at the row's
// last decoded token) a row costs the head alone; without, the reward decodes the row from
// scratch on a context of its own over the policy's weights (made on first need).
class ProbeReward : public GgufReward {
 public:
  virtual int32_t layer() const = 0;
  virtual int32_t n_embd() const = 0;
  // The score of one feature vector (n_embd floats).
  virtual double ScoreFeatures(const float* features) const = 0;
  // The prompt's tokens as Begin renders `text` (ProbeOptions::chat).
  virtual std::vector<int32_t> PromptTokensOf(const std::string& text) const = 0;
  // The model it was fitted on and checked against.
  virtual const Model& policy() const = 0;
};

// A probe file on `policy`. Throws ModelNotFoundError / ModelLoadError for the file, and
// ModelLoadError naming both files when the probe was fitted on another model; ParameterError
// when the policy's graph does not expose the probe's layer.
std::shared_ptr<ProbeReward> MakeProbeReward(const std::string& path,
                                             const std::shared_ptr<Model>& policy,
                                             const ProbeOptions& options);

}  // namespace stars
