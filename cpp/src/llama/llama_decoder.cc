// The policy decoder on llama.cpp: a Context, the SequencePool of its ids and the BatchRunner
// that lays jobs into its batches.
#include <memory>
#include <utility>

#include "llama/batch_runner.h"
#include "llama/context.h"
#include "llama/policy_decoder.h"
#include "llama/sequence_pool.h"

namespace stars {
namespace {

class LlamaDecoder : public PolicyDecoder {
 public:
  LlamaDecoder(std::shared_ptr<Model> model, const ContextOptions& options)
      : context_(std::move(model), options), pool_(context_), runner_(context_, &pool_) {}

  void Decode(const std::vector<DecodeJob>& jobs,
              const std::function<void(const DecodedView&)>& on_view) override {
    runner_.Run(jobs, on_view);
  }
  const float* Logits(int32_t batch_index) const override { return context_.Logits(batch_index); }
  llama_token SampledToken(int32_t batch_index) const override {
    return context_.SampledToken(batch_index);
  }

  bool SetHiddenStates(bool on) override { return context_.SetTokenEmbeddings(on); }
  const float* HiddenState(int32_t batch_index) const override {
    return context_.TokenEmbeddings(batch_index);
  }

  llama_seq_id AcquireLasting() override { return pool_.AcquireLasting(); }
  llama_seq_id Fork(llama_seq_id source) override { return pool_.Fork(source); }
  llama_seq_id Keep(llama_seq_id seq) override { return pool_.Keep(seq); }
  llama_seq_id Adopt(llama_seq_id trunk, llama_seq_id chosen) override {
    return pool_.Adopt(trunk, chosen);
  }
  void Rewind(llama_seq_id seq, llama_pos pos) override { pool_.Rewind(seq, pos); }
  void Release(llama_seq_id seq) override { pool_.Release(seq); }
  bool AttachSampler(llama_seq_id seq, Sampler* sampler) override {
    return pool_.AttachSampler(seq, sampler);
  }
  const Sampler* AttachedSampler(llama_seq_id seq) const override {
    return pool_.AttachedSampler(seq);
  }
  void DetachSampler(llama_seq_id seq) override { pool_.DetachSampler(seq); }

  int32_t n_seq() const override { return pool_.n_total(); }
  int32_t n_seq_in_use() const override { return pool_.n_in_use(); }
  int64_t n_cells_in_use() const override { return pool_.n_cells_in_use(); }
  int32_t n_cells() const override { return context_.n_ctx(); }
  int32_t n_cells_per_seq() const override { return context_.n_ctx_seq(); }
  bool isolated() const override { return pool_.isolated(); }
  int32_t n_threads() const override { return context_.n_threads(); }

 private:
  // Destroyed in reverse: the runner and the pool before the context they use.
  Context context_;
  SequencePool pool_;
  BatchRunner runner_;
};

}  // namespace

std::unique_ptr<PolicyDecoder> MakeLlamaDecoder(std::shared_ptr<Model> model,
                                                const ContextOptions& options) {
  return std::make_unique<LlamaDecoder>(std::move(model), options);
}

}  // namespace stars
