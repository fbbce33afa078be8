#include "stars/kv_session.h"

#include <utility>

#include "llama/batch.h"
#include "llama/context.h"
#include "llama/sequence_pool.h"
#include "stars/errors.h"

namespace stars {
namespace {

ContextOptions SessionOptions(int32_t n_ctx, int32_t n_seq_max, int32_t n_threads) {
  ContextOptions options;
  options.n_ctx = n_ctx;
  options.n_seq_max = n_seq_max;
  options.n_threads = n_threads;
  return options;
}

}  // namespace

struct KvSession::State {
  State(std::shared_ptr<Model> model, const ContextOptions& options)
      : context(std::move(model), options), pool(context), batch(context.n_batch()) {}

  Context context;
  SequencePool pool;
  Batch batch;
};

KvSession::KvSession(std::shared_ptr<Model> model, int32_t n_ctx, int32_t n_seq_max,
                     int32_t n_threads)
    : state_(
          std::make_unique<State>(std::move(model), SessionOptions(n_ctx, n_seq_max, n_threads))) {}

KvSession::~KvSession() = default;

int32_t KvSession::Acquire() { return state_->pool.Acquire(); }
int32_t KvSession::Fork(int32_t source) { return state_->pool.Fork(source); }
void KvSession::Rewind(int32_t seq, int32_t pos) { state_->pool.Rewind(seq, pos); }
void KvSession::Release(int32_t seq) { state_->pool.Release(seq); }
void KvSession::Clear() { state_->pool.Clear(); }

std::vector<int32_t> KvSession::Decode(const std::vector<int32_t>& tokens,
                                       const std::vector<int32_t>& positions,
                                       const std::vector<int32_t>& seq_ids,
                                       const std::vector<bool>& outputs) {
  if (tokens.size() != positions.size() || tokens.size() != seq_ids.size() ||
      tokens.size() != outputs.size()) {
    throw ParameterError("tokens, positions, seq_ids and outputs must have one length");
  }
  Batch& batch = state_->batch;
  batch.Clear();
  std::vector<int32_t> indices;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t index = batch.Add(tokens[i], positions[i], seq_ids[i], outputs[i]);
    if (outputs[i]) indices.push_back(index);
  }
  state_->context.Decode(batch);
  return indices;
}

const float* KvSession::Logits(int32_t batch_index) const {
  return state_->context.Logits(batch_index);
}

int32_t KvSession::n_vocab() const { return state_->context.model().n_vocab(); }
int32_t KvSession::n_ctx() const { return state_->context.n_ctx(); }
int32_t KvSession::n_seq_max() const { return state_->context.n_seq_max(); }

}  // namespace stars
