// The one place that turns "these tokens of these sequences" into llama_decode calls: the jobs
// are laid out in one batch and decoded in views of at most n_batch tokens, each output row
// mapped back to its job (the scheme of llama.cpp's examples/parallel). The policy's steps, its
// prompt prefills and every reward model go through it.
//
// In an isolated context (a KV stream per sequence) a job's numerics must not depend on the
// jobs beside it. llama.cpp advances the sequences of a micro-batch by equal numbers of tokens,
// so a job laid beside a shorter one would be cut where the shorter one ends, and a job whose
// last token is computed alone reads other logits than one computed whole. So there a view
// holds jobs of one length only, each whole in one micro-batch (ids ascending, so that
// consecutive ones share it); a job longer than a micro-batch has a view of its own, cut as it
// would be alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "llama.h"
#include "llama/batch.h"

namespace stars {

class Context;
class SequencePool;

// Tokens of one sequence from position `pos`. Run lays every job into its batch before the first
// decode: `tokens` need only be valid until then (an on_view callback may grow the source).
struct DecodeJob {
  llama_seq_id seq = -1;
  llama_pos pos = 0;
  const llama_token* tokens = nullptr;
  int32_t n_tokens = 0;
  bool output = false;  // read the output (logits, embeddings) at the job's last token
};

// An output of a decoded view: job `job`'s last token, at `batch_index` of that view.
struct DecodedOutput {
  size_t job;
  int32_t batch_index;
};

// One decoded view: its outputs (valid until the next view is decoded), its size and how long
// llama_decode took.
struct DecodedView {
  const std::vector<DecodedOutput>& outputs;
  int32_t n_tokens;
  double seconds;
  // The micro-batches llama.cpp split it into, each a pass over the weights: in an isolated
  // context one per run of consecutive sequence ids (llama.cpp's sequential split), else one per
  // n_ubatch tokens.
  int32_t micro_batches = 1;
  int32_t n_jobs = 0;  // jobs with tokens in it (n_tokens == n_jobs: one token each)
};

class BatchRunner {
 public:
  // `pool` (may be null) learns the cells each sequence holds after every view. With
  // `whole_jobs` a job never spans two views (pooled outputs need a whole sequence), so each
  // job must fit n_batch.
  BatchRunner(Context& context, SequencePool* pool, bool whole_jobs = false);

  // Decodes `jobs` in order and calls `on_view` after each view that has outputs. Throws
  // DecodeError from llama_decode, and Error for a whole job longer than n_batch; what
  // `on_view` throws passes through.
  void Run(const std::vector<DecodeJob>& jobs,
           const std::function<void(const DecodedView&)>& on_view);

  int32_t n_batch() const { return n_batch_; }

 private:
  Context& context_;
  SequencePool* pool_;
  bool whole_jobs_;
  int32_t n_batch_;
  Batch batch_;  // grows to the largest set of jobs seen: never reallocated per step
  std::vector<size_t> job_of_token_;
  std::vector<bool> reported_;  // by token: the job's output row
  std::vector<DecodedOutput> outputs_;
};

}  // namespace stars
