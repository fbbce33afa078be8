// What the engine loop needs of the policy's llama.cpp context, behind one interface: decode a
// batch of jobs, read an output row's logits or the token llama.cpp drew for it in the graph, and
// the sequences' fork, keep, adopt, rewind and release. MakeLlamaDecoder gives the real one (a
// Context with its SequencePool and BatchRunner); the engine's unit tests drive the loop with a
// fake on plain numbers, with no model file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "llama.h"
#include "llama/batch_runner.h"
#include "llama/context.h"
#include "llama/sampler.h"
#include "stars/model.h"

namespace stars {

class PolicyDecoder {
 public:
  virtual ~PolicyDecoder() = default;

  // BatchRunner::Run: decodes `jobs` in views and calls `on_view` after each view with outputs.
  virtual void Decode(const std::vector<DecodeJob>& jobs,
                      const std::function<void(const DecodedView&)>& on_view) = 0;
  // The logits (n_vocab floats) of the output at `batch_index` of the last decoded view.
  virtual const float* Logits(int32_t batch_index) const = 0;
  // The token drawn in the graph for the output at `batch_index` (a sequence with a sampler).
  virtual llama_token SampledToken(int32_t batch_index) const = 0;
  // The last layer's hidden states for the next decodes' outputs (a probe reads them), or
  // not. Every token of a batch is then an output: only batches of one token per sequence ask.
  // False when the context cannot give them.
  virtual bool SetHiddenStates(bool on) = 0;
  // The hidden state (n_embd floats) of the output at `batch_index` of the last decoded view.
  virtual const float* HiddenState(int32_t batch_index) const = 0;

  // SequencePool's contract (llama/sequence_pool.h).
  virtual llama_seq_id AcquireLasting() = 0;
  virtual llama_seq_id Fork(llama_seq_id source) = 0;
  virtual llama_seq_id Keep(llama_seq_id seq) = 0;
  virtual llama_seq_id Adopt(llama_seq_id trunk, llama_seq_id chosen) = 0;
  virtual void Rewind(llama_seq_id seq, llama_pos pos) = 0;
  virtual void Release(llama_seq_id seq) = 0;
  virtual bool AttachSampler(llama_seq_id seq, Sampler* sampler) = 0;
  virtual const Sampler* AttachedSampler(llama_seq_id seq) const = 0;
  virtual void DetachSampler(llama_seq_id seq) = 0;

  virtual int32_t n_seq() const = 0;  // sequence ids
  virtual int32_t n_seq_in_use() const = 0;
  virtual int64_t n_cells_in_use() const = 0;
  virtual int32_t n_cells() const = 0;          // every cell of the context
  virtual int32_t n_cells_per_seq() const = 0;  // the most one sequence can hold
  virtual bool isolated() const = 0;            // a KV stream per sequence
  virtual int32_t n_threads() const = 0;
};

// Makes the policy's decoder for a context of `options`; the loop calls it again, larger, when
// the queue needs more ids or cells.
using PolicyDecoderFactory =
    std::function<std::unique_ptr<PolicyDecoder>(const ContextOptions& options)>;

// The decoder on a llama.cpp context of `model`.
std::unique_ptr<PolicyDecoder> MakeLlamaDecoder(std::shared_ptr<Model> model,
                                                const ContextOptions& options);

}  // namespace stars
