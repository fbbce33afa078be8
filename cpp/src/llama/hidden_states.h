// The policy's hidden states at the last token of token lists, read in batched decodes on a
// context of their own: the feature extractor behind probes (FeatureExtractor, stars/probe.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "llama/batch_runner.h"
#include "llama/context.h"
#include "stars/probe.h"

namespace stars {

// Throws ParameterError naming the layer unless 0 <= layer <= n_layer and, below n_layer, the
// model's graph exposes that layer's input.
void CheckFeatureLayer(const Model& model, int32_t layer);

class HiddenStates : public FeatureExtractor {
 public:
  // Throws ParameterError for a layer outside [0, n_layer] or one whose input the model's graph
  // does not expose.
  HiddenStates(std::shared_ptr<Model> model, int32_t layer, int32_t n_threads, KvType kv_type);

  std::vector<float> Extract(const std::vector<std::vector<int32_t>>& inputs,
                             const std::function<void(size_t)>& on_rows) override;
  int32_t layer() const override { return layer_; }
  int32_t n_embd() const override { return n_embd_; }
  int64_t tokens_decoded() const override { return tokens_decoded_; }

 private:
  // A context whose KV pool holds `n_ctx` cells (made again, larger, for a longer input).
  void Open(int32_t n_ctx);

  std::shared_ptr<Model> model_;
  int32_t layer_;
  int32_t n_layer_;
  int32_t n_embd_;
  int32_t n_threads_;
  KvType kv_type_;
  std::unique_ptr<Context> context_;
  std::unique_ptr<BatchRunner> runner_;
  int64_t tokens_decoded_ = 0;
};

}  // namespace stars
