#include "llama/context.h"

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "algorithm/ubatch_guard.h"
#include "llama/batch.h"
#include "stars/errors.h"
#include "stars/log.h"

// llama.cpp's per-layer embeddings output, declared in its staging header src/llama-ext.h (C++
// linkage), which its installed headers leave out; libllama exports both.
LLAMA_API void llama_set_embeddings_layer_inp(struct llama_context* ctx, uint32_t lid, bool value);
LLAMA_API float* llama_get_embeddings_layer_inp(struct llama_context* ctx, uint32_t lid);

namespace stars {

namespace {

// Architectures whose graph in llama.cpp exposes every layer's input (src/models/*.cpp that set
// t_layer_inp); for any other, asking for one aborts the process at the next decode.
constexpr const char* kLayerInputArchitectures[] = {
    "llama",  "llama-embed", "qwen3", "qwen3moe",   "qwen3next", "qwen35",  "qwen35moe",
    "gemma4", "gpt-oss",     "lfm2",  "minimax-m2", "mimo2",     "nanbeige"};

std::atomic<int64_t> live_contexts{0};
}  // namespace

int32_t MaxSequences() { return static_cast<int32_t>(llama_max_parallel_sequences()); }
int64_t LiveContexts() { return live_contexts.load(); }

Context::Context(std::shared_ptr<Model> model, const ContextOptions& options)
    : model_(std::move(model)), embeddings_(options.embeddings), layout_(options.layout) {
  const int32_t max_seq = MaxSequences();
  if (options.n_seq_max < 1 || options.n_seq_max > max_seq) {
    throw ParameterError("n_seq_max must be in [1, " + std::to_string(max_seq) + "], got " +
                         std::to_string(options.n_seq_max));
  }
  if (options.n_ctx < 16) {
    throw ParameterError("n_ctx must be at least 16, got " + std::to_string(options.n_ctx));
  }
  const bool isolated = options.layout == KvLayout::kIsolated;
  // Isolated: whole sequences fit n_ctx; llama.cpp pads each stream to 256 cells.
  const int64_t n_ctx_seq = isolated ? (options.n_ctx + 255) / 256 * 256 : options.n_ctx;
  const int64_t n_ctx_total = isolated ? n_ctx_seq * options.n_seq_max : options.n_ctx;
  if (n_ctx_total > INT32_MAX) {
    throw ParameterError("a context of " + std::to_string(options.n_seq_max) + " sequences of " +
                         std::to_string(n_ctx_seq) + " cells is too large");
  }
  llama_context_params params = llama_context_default_params();
  params.n_ctx = static_cast<uint32_t>(n_ctx_total);
  // Isolated: a batch holds many short sequences; a micro-batch of 512 holds them whole.
  const int64_t batch = isolated ? std::max<int64_t>(n_ctx_seq, 512) : n_ctx_seq;
  params.n_batch = static_cast<uint32_t>(options.n_batch > 0 ? options.n_batch : batch);
  params.n_ubatch = options.n_ubatch > 0 ? static_cast<uint32_t>(options.n_ubatch)
                                         : std::min<uint32_t>(512, params.n_batch);
  params.n_seq_max = static_cast<uint32_t>(options.n_seq_max);
  // Causal decoding only: an encoder needs its whole batch in one micro-batch.
  const int32_t ubatch =
      options.embeddings ? static_cast<int32_t>(params.n_ubatch)
                         : GuardedUbatch(static_cast<int32_t>(params.n_ubatch), model_->n_head(),
                                         model_->n_head_kv(), model_->offloaded());
  if (ubatch < static_cast<int32_t>(params.n_ubatch)) {
    static std::once_flag warned;
    std::call_once(warned, [&] {
      LogWarning("stars: micro-batches capped at " + std::to_string(ubatch) + " tokens for '" +
                 model_->description() + "' on the GPU (" + std::to_string(model_->n_head()) +
                 " query heads over " + std::to_string(model_->n_head_kv()) +
                 " KV heads: llama.cpp's CUDA backend crashed on 64 such sequences at once)");
    });
    params.n_ubatch = static_cast<uint32_t>(ubatch);
  }
  // Output rows: llama.cpp sizes its output buffer and its worst-case graph by n_outputs_max
  // (n_batch by default, ~100 MB of logits for a 49k vocabulary at n_ubatch 512). Without
  // embeddings the engine and the rewards ask one output per sequence per batch at most, so
  // n_seq_max rows do; with embeddings llama.cpp outputs every token. llama.cpp also reserves
  // max(outputs, n_seq_max) rows and aborts when that exceeds n_outputs_max.
  params.n_outputs_max =
      options.embeddings ? std::max(params.n_batch, params.n_seq_max) : params.n_seq_max;
  n_outputs_max_ = static_cast<int32_t>(params.n_outputs_max);
  const int32_t threads = ResolveThreads(options.n_threads);
  params.n_threads = threads;
  params.n_threads_batch = threads;
  params.embeddings = options.embeddings;
  params.pooling_type = options.pooling;
  // Flash attention on the CPU gives results that depend on how many sequences step together
  // and how tokens are split into batches, so it stays off there; offloaded models keep it.
  const bool on_cpu = model_->n_gpu_layers() == 0;
  if (options.kv_type == KvType::kF32) params.type_k = params.type_v = GGML_TYPE_F32;
  if (options.kv_type == KvType::kQ8_0) {
    // llama.cpp quantizes V only under flash attention. Isolated on the CPU keeps its guarantee
    // and quantizes K alone (about 3/4 of an f16 cache); shared quantizes both.
    params.type_k = GGML_TYPE_Q8_0;
    params.type_v = isolated && on_cpu ? GGML_TYPE_F16 : GGML_TYPE_Q8_0;
  }
  const bool quantized_v = params.type_v == GGML_TYPE_Q8_0;
  // Without flash attention llama.cpp does not check that a quantized K's blocks fit its heads
  // (it would read blocks across heads): refuse that here, as it does under flash attention.
  const int32_t head_k = model_->n_embd_head_k();
  if (params.type_k == GGML_TYPE_Q8_0 && !quantized_v && head_k % 32 != 0) {
    throw Error("kv_type q8_0: its block size 32 does not divide the key head size " +
                std::to_string(head_k) + " of '" + model_->description() + "'");
  }
  params.flash_attn_type = quantized_v ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                           : on_cpu    ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                       : LLAMA_FLASH_ATTN_TYPE_AUTO;
  // Shared: one pool of cells for every sequence, forks share the trunk's cells. Isolated: a
  // stream per sequence, so that its cells sit among nobody else's (a fork copies the stream).
  params.kv_unified = !isolated;
  // Forks and rewinds need every position a sequence still reads, sliding-window layers too.
  params.swa_full = true;
  params.no_perf = true;
  TakeFirstLogError();
  ctx_ = llama_init_from_model(model_->get(), params);
  if (ctx_ == nullptr) {
    // llama.cpp names the problem only in its log (a cache type the model's heads cannot take).
    const std::string reason = TakeFirstLogError();
    throw Error("llama.cpp could not create a context with n_ctx=" + std::to_string(options.n_ctx) +
                ", n_seq_max=" + std::to_string(options.n_seq_max) + " and kv_type " +
                KvTypeName(options.kv_type) + " for '" + model_->description() +
                "': " + (reason.empty() ? "out of memory?" : reason));
  }
  ++live_contexts;
}

Context::~Context() {
  llama_free(ctx_);
  --live_contexts;
}

void Context::Decode(const Batch& batch) { Decode(batch.get()); }

void Context::Decode(const llama_batch& batch) {
  // Validated here: llama.cpp would abort the process on more output rows than it reserved.
  if (!embeddings_ && batch.logits != nullptr) {
    int32_t outputs = 0;
    for (int32_t i = 0; i < batch.n_tokens; ++i) outputs += batch.logits[i] != 0;
    if (outputs > n_outputs_max_) {
      throw ParameterError("a decode asked for " + std::to_string(outputs) +
                           " output rows; this context gives at most " +
                           std::to_string(n_outputs_max_) + " (one per sequence)");
    }
  }
  // With embeddings switched on, every token is an output row.
  if (token_embeddings_ && batch.n_tokens > n_outputs_max_) {
    throw ParameterError("a decode of " + std::to_string(batch.n_tokens) +
                         " tokens with hidden states on needs as many output rows; this context "
                         "gives at most " +
                         std::to_string(n_outputs_max_));
  }
  n_decoded_ = 0;
  const int32_t code = llama_decode(ctx_, batch);
  if (code == 0) {
    n_decoded_ = batch.n_tokens;
    return;
  }
  const std::string size = std::to_string(batch.n_tokens) + " tokens";
  switch (code) {
    case 1:
      throw DecodeError("llama_decode found no KV slot for a batch of " + size + " (n_ctx=" +
                        std::to_string(n_ctx()) + "): raise n_ctx or lower candidates");
    case 2:
      throw DecodeError("llama_decode was aborted on a batch of " + size);
    case -1:
      throw DecodeError("llama_decode rejected an invalid batch of " + size);
    default:
      throw DecodeError("llama_decode failed with code " + std::to_string(code) +
                        " on a batch of " + size);
  }
}

const float* Context::Logits(int32_t batch_index) const {
  const float* logits = llama_get_logits_ith(ctx_, batch_index);
  if (logits == nullptr) {
    throw DecodeError("no logits for batch index " + std::to_string(batch_index));
  }
  return logits;
}

bool Context::AttachSampler(llama_seq_id seq, llama_sampler* chain) {
  // Reward contexts (embeddings) never sample; llama.cpp must not build a sampling graph there.
  if (embeddings_ || chain == nullptr) return false;
  return llama_set_sampler(ctx_, seq, chain);
}

void Context::DetachSampler(llama_seq_id seq) { llama_set_sampler(ctx_, seq, nullptr); }

llama_token Context::SampledToken(int32_t batch_index) const {
  const llama_token token = llama_get_sampled_token_ith(ctx_, batch_index);
  if (token == LLAMA_TOKEN_NULL) {
    throw DecodeError("llama.cpp sampled no token on the backend for batch index " +
                      std::to_string(batch_index) +
                      " (a sampler it could not offload on this device): use sampling='host'");
  }
  return token;
}

bool Context::SetTokenEmbeddings(bool on) {
  if (embeddings_ || pooling() != LLAMA_POOLING_TYPE_NONE) return false;
  if (on != token_embeddings_) llama_set_embeddings(ctx_, on);
  token_embeddings_ = on;
  return true;
}

const float* Context::TokenEmbeddings(int32_t batch_index) const {
  const float* embeddings = llama_get_embeddings_ith(ctx_, batch_index);
  if (embeddings == nullptr) {
    throw DecodeError("no embeddings for batch index " + std::to_string(batch_index));
  }
  return embeddings;
}

std::string LayerInputProblem(const Model& model, int32_t layer) {
  const int32_t n_layer = model.n_layer();
  if (layer < 0 || layer >= n_layer) {
    return "layer " + std::to_string(layer) + " has no input in '" + model.description() +
           "': its layers are 0.." + std::to_string(n_layer - 1);
  }
  const std::string arch = model.architecture();
  for (const char* name : kLayerInputArchitectures) {
    if (arch == name) return "";
  }
  return "layer " + std::to_string(layer) + ": llama.cpp's graph of the " + arch +
         " architecture ('" + model.description() +
         "') does not expose a layer's input; use layer " + std::to_string(n_layer) +
         " (the last layer's output)";
}

void Context::OutputLayerInput(int32_t layer) {
  const std::string problem = LayerInputProblem(*model_, layer);
  if (!problem.empty()) throw ParameterError("layer", problem);
  if (layer_input_ >= 0)
    llama_set_embeddings_layer_inp(ctx_, static_cast<uint32_t>(layer_input_), false);
  llama_set_embeddings_layer_inp(ctx_, static_cast<uint32_t>(layer), true);
  layer_input_ = layer;
  n_decoded_ = 0;
}

const float* Context::LayerInput(int32_t layer, int32_t batch_index) const {
  // llama.cpp asserts (aborts) when asked for a layer it did not output.
  if (layer != layer_input_ || batch_index < 0 || batch_index >= n_decoded_) {
    throw DecodeError("no input of layer " + std::to_string(layer) + " for batch index " +
                      std::to_string(batch_index));
  }
  const float* rows = llama_get_embeddings_layer_inp(ctx_, static_cast<uint32_t>(layer));
  if (rows == nullptr) {
    throw DecodeError("no input of layer " + std::to_string(layer) + " in the last batch");
  }
  return rows + static_cast<int64_t>(batch_index) * model_->n_embd();
}

const float* Context::SequenceEmbeddings(int32_t seq) const {
  const float* embeddings = llama_get_embeddings_seq(ctx_, seq);
  if (embeddings == nullptr) {
    throw DecodeError("no pooled output for sequence " + std::to_string(seq));
  }
  return embeddings;
}

}  // namespace stars
