#include "llama/hidden_states.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "stars/errors.h"

namespace stars {
namespace {

// Rows decoded side by side per batch, and the cells their KV pool starts with: a batch holds
// rows until either is full.
constexpr int32_t kRowsPerBatch = 32;
constexpr int32_t kInitialCells = 2048;
// Bounds llama.cpp's output buffer: with embeddings on it outputs (and keeps logits for) every
// token of a decode.
constexpr int32_t kBatchTokens = 512;

}  // namespace

void CheckFeatureLayer(const Model& model, int32_t layer) {
  const int32_t n_layer = model.n_layer();
  if (layer < 0 || layer > n_layer) {
    throw ParameterError("layer", "layer must be in [0, " + std::to_string(n_layer) + "] for '" +
                                      model.description() + "' (" + std::to_string(n_layer) +
                                      ": the last layer's output), got " + std::to_string(layer));
  }
  if (layer < n_layer) {
    const std::string problem = LayerInputProblem(model, layer);
    if (!problem.empty()) throw ParameterError("layer", problem);
  }
}

HiddenStates::HiddenStates(std::shared_ptr<Model> model, int32_t layer, int32_t n_threads,
                           KvType kv_type)
    : model_(std::move(model)),
      layer_(layer),
      n_layer_(model_->n_layer()),
      n_embd_(model_->n_embd()),
      n_threads_(n_threads),
      kv_type_(kv_type) {
  CheckFeatureLayer(*model_, layer);
  Open(kInitialCells);
}

void HiddenStates::Open(int32_t n_ctx) {
  runner_.reset();
  context_.reset();
  ContextOptions options;
  options.n_ctx = n_ctx;
  options.n_seq_max = kRowsPerBatch;
  // Shared: llama.cpp splits a batch into micro-batches in order, which the per-layer output
  // (indexed by a token's place in the batch) needs.
  options.layout = KvLayout::kShared;
  options.n_batch = kBatchTokens;
  options.n_threads = n_threads_;
  options.embeddings = true;
  options.pooling = LLAMA_POOLING_TYPE_NONE;
  options.kv_type = kv_type_;
  context_ = std::make_unique<Context>(model_, options);
  if (layer_ < n_layer_) context_->OutputLayerInput(layer_);
  runner_ = std::make_unique<BatchRunner>(*context_, nullptr);
}

std::vector<float> HiddenStates::Extract(const std::vector<std::vector<int32_t>>& inputs,
                                         const std::function<void(size_t)>& on_rows) {
  const int32_t n_vocab = model_->n_vocab();
  size_t longest = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].empty()) {
      throw ParameterError("input " + std::to_string(i) +
                           " is empty: a probe reads the output "
                           "at an input's last token");
    }
    for (int32_t token : inputs[i]) {
      if (token < 0 || token >= n_vocab) {
        throw ParameterError("input " + std::to_string(i) + " holds token " +
                             std::to_string(token) + ", outside the vocabulary of " +
                             std::to_string(n_vocab) + " tokens");
      }
    }
    longest = std::max(longest, inputs[i].size());
  }
  if (static_cast<int64_t>(longest) > context_->n_ctx()) {
    if (static_cast<int64_t>(longest) > model_->n_ctx_train()) {
      throw ContextLengthError("an input of " + std::to_string(longest) +
                               " tokens is longer than the model's training context (" +
                               std::to_string(model_->n_ctx_train()) + ")");
    }
    Open(static_cast<int32_t>((longest + 255) / 256 * 256));
  }
  std::vector<float> features(inputs.size() * static_cast<size_t>(n_embd_));
  size_t next = 0;
  while (next < inputs.size()) {
    // One group: rows while sequence ids and cells last; the context starts empty.
    std::vector<DecodeJob> jobs;
    int64_t cells = 0;
    while (next + jobs.size() < inputs.size() &&
           static_cast<int32_t>(jobs.size()) < kRowsPerBatch) {
      const auto& input = inputs[next + jobs.size()];
      if (cells + static_cast<int64_t>(input.size()) > context_->n_ctx()) break;
      cells += static_cast<int64_t>(input.size());
      DecodeJob job;
      job.seq = static_cast<llama_seq_id>(jobs.size());
      job.tokens = input.data();
      job.n_tokens = static_cast<int32_t>(input.size());
      job.output = true;
      jobs.push_back(job);
    }
    context_->ClearMemory();
    const size_t first = next;
    runner_->Run(jobs, [&](const DecodedView& view) {
      for (const DecodedOutput& out : view.outputs) {
        const float* row = layer_ == n_layer_ ? context_->TokenEmbeddings(out.batch_index)
                                              : context_->LayerInput(layer_, out.batch_index);
        std::memcpy(features.data() + (first + out.job) * static_cast<size_t>(n_embd_), row,
                    static_cast<size_t>(n_embd_) * sizeof(float));
      }
    });
    tokens_decoded_ += cells;
    next += jobs.size();
    if (on_rows) on_rows(next);
  }
  context_->ClearMemory();
  return features;
}

std::unique_ptr<FeatureExtractor> MakeFeatureExtractor(std::shared_ptr<Model> policy, int32_t layer,
                                                       int32_t n_threads, KvType kv_type) {
  return std::make_unique<HiddenStates>(std::move(policy), layer, n_threads, kv_type);
}

}  // namespace stars
