// A policy decoder on plain numbers, for the engine loop's unit tests: no model file, no
// llama.cpp context. Each sequence is a token history; an output row's logits are a function of
// its sequence's history alone (FakeModel), so a request's text must not depend on what else
// runs. KV cells are modelled as llama.cpp holds them: in the shared layout one pool of cells
// that forks share with their source (a cell is free once no sequence holds it), in the isolated
// layout a stream per sequence. A decode that finds no free cell throws DecodeError, as
// llama_decode returns 1, and a job at the wrong position or on an unused id fails the test.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llama/policy_decoder.h"
#include "llama/vocabulary.h"
#include "stars/errors.h"

namespace stars::testing {

// Token 0 ends generation; token t > 0 reads as the letter 'a' + t - 1.
class FakeVocabulary : public Vocabulary {
 public:
  static constexpr int32_t kSize = 16;
  std::string Piece(llama_token token) const override {
    return token <= 0 ? std::string() : std::string(1, static_cast<char>('a' + token - 1));
  }
  bool IsEog(llama_token token) const override { return token == 0; }
  int32_t n_vocab() const override { return kSize; }
};

// The logits of the next token after `history` (prompt and response tokens).
using FakeModel = std::function<std::vector<float>(const std::vector<llama_token>& history)>;

// Mostly the letter after the last one (wrapping past 'o'), with some mass on its neighbours,
// and the end of generation once the history is `length` tokens long.
inline FakeModel Alphabet(size_t length = 1000) {
  return [length](const std::vector<llama_token>& history) {
    std::vector<float> logits(FakeVocabulary::kSize, -4.0f);
    const llama_token next = history.back() % (FakeVocabulary::kSize - 1) + 1;
    logits[next] = 2.0f;
    logits[next % (FakeVocabulary::kSize - 1) + 1] = 0.5f;
    logits[0] = history.size() >= length ? 10.0f : -10.0f;
    return logits;
  };
}

// What the tests read of the decoders an engine made.
struct FakeLog {
  std::vector<ContextOptions> contexts;  // each decoder made, in order
  int64_t decode_calls = 0;
  int32_t peak_seqs = 0;
  int64_t peak_cells = 0;
  int64_t cells_in_use = 0;  // of the latest decoder
  int32_t seqs_in_use = 0;
  int64_t backend_draws = 0;
  int64_t hidden_rows = 0;   // outputs decoded with hidden states on
  int64_t padding_jobs = 0;  // one-token jobs without an output
  // Per decode, the runs of consecutive sequence ids among its one-token jobs: llama.cpp's
  // micro-batches of an isolated context.
  int64_t step_runs = 0;
  int64_t steps = 0;
  // Throws DecodeError from the decode call of this number (1-based; 0: never).
  int64_t fail_decode_call = 0;
};

class FakeDecoder : public PolicyDecoder {
 public:
  FakeDecoder(const ContextOptions& options, FakeModel model, FakeLog* log)
      : model_(std::move(model)),
        log_(log),
        isolated_(options.layout == KvLayout::kIsolated),
        n_seq_(options.n_seq_max),
        n_ctx_(options.n_ctx),
        seqs_(static_cast<size_t>(options.n_seq_max)),
        refs_(isolated_ ? 0 : static_cast<size_t>(options.n_ctx), 0) {}

  void Decode(const std::vector<DecodeJob>& jobs,
              const std::function<void(const DecodedView&)>& on_view) override {
    if (++log_->decode_calls == log_->fail_decode_call) {
      throw DecodeError("llama_decode failed (fake, code -3)");
    }
    rows_.clear();
    sampled_.clear();
    states_.clear();
    // With hidden states on llama.cpp outputs every token: only one-token jobs may ask.
    if (hidden_on_) {
      for (const DecodeJob& job : jobs)
        EXPECT_EQ(job.n_tokens, 1) << "a prefill with hidden states";
    }
    std::vector<DecodedOutput> outputs;
    int32_t n_tokens = 0;
    std::vector<llama_seq_id> one_token;
    for (const DecodeJob& job : jobs) {
      if (job.n_tokens == 1) one_token.push_back(job.seq);
      if (job.n_tokens == 1 && !job.output) ++log_->padding_jobs;
    }
    if (!one_token.empty()) {
      std::sort(one_token.begin(), one_token.end());
      ++log_->steps;
      ++log_->step_runs;
      for (size_t i = 1; i < one_token.size(); ++i) {
        log_->step_runs += one_token[i] != one_token[i - 1] + 1 ? 1 : 0;
      }
    }
    for (size_t j = 0; j < jobs.size(); ++j) {
      const DecodeJob& job = jobs[j];
      Seq& seq = Use(job.seq);
      EXPECT_EQ(job.pos, static_cast<llama_pos>(seq.tokens.size()))
          << "a job must continue its sequence: seq " << job.seq;
      EXPECT_GT(job.n_tokens, 0);
      for (int32_t i = 0; i < job.n_tokens; ++i) Append(job.seq, job.tokens[i]);
      n_tokens += job.n_tokens;
      if (!job.output) continue;
      outputs.push_back({j, static_cast<int32_t>(rows_.size())});
      rows_.push_back(model_(seq.tokens));
      float sum = 0;
      for (llama_token t : seq.tokens) sum += static_cast<float>(t);
      states_.push_back(
          {static_cast<float>(seq.tokens.size()), static_cast<float>(seq.tokens.back()), sum});
      if (hidden_on_) log_->hidden_rows += 1;
      // llama.cpp draws in the graph for a sequence that carries a chain.
      llama_token drawn = LLAMA_TOKEN_NULL;
      if (seq.sampler) {
        drawn =
            seq.sampler->SampleFromLogits(rows_.back().data(), FakeVocabulary::kSize, &scratch_);
        ++log_->backend_draws;
      }
      sampled_.push_back(drawn);
    }
    Note();
    on_view(DecodedView{outputs, n_tokens, 0.001, 1, static_cast<int32_t>(jobs.size())});
  }
  const float* Logits(int32_t batch_index) const override {
    EXPECT_LT(static_cast<size_t>(batch_index), rows_.size());
    return rows_.at(static_cast<size_t>(batch_index)).data();
  }
  llama_token SampledToken(int32_t batch_index) const override {
    const llama_token token = sampled_.at(static_cast<size_t>(batch_index));
    if (token == LLAMA_TOKEN_NULL) throw DecodeError("no sampler drew this row");
    return token;
  }

  bool SetHiddenStates(bool on) override {
    hidden_on_ = on;
    return true;
  }
  // [tokens in the sequence, its last token, their sum]: what a probe test can recompute.
  const float* HiddenState(int32_t batch_index) const override {
    EXPECT_TRUE(hidden_on_) << "hidden states read while off";
    return states_.at(static_cast<size_t>(batch_index)).data();
  }

  llama_seq_id AcquireLasting() override {
    for (llama_seq_id id = n_seq_ - 1; id >= 0; --id) {
      if (!seqs_[id].used) return Take(id);
    }
    throw Error("no free sequence id");
  }
  llama_seq_id Fork(llama_seq_id source) override {
    const llama_seq_id id = Lowest();
    Seq& fork = seqs_[id];
    fork.tokens = Use(source).tokens;
    if (isolated_) {
      fork.cells.assign(fork.tokens.size(), -1);
    } else {
      fork.cells = seqs_[source].cells;
      for (int32_t cell : fork.cells) ++refs_[cell];
    }
    Note();
    return id;
  }
  llama_seq_id Keep(llama_seq_id seq) override {
    if (!isolated_) return seq;
    const llama_seq_id lasting = AcquireLasting();
    seqs_[lasting].tokens = Use(seq).tokens;
    seqs_[lasting].cells.assign(seqs_[lasting].tokens.size(), -1);
    Release(seq);
    return lasting;
  }
  llama_seq_id Adopt(llama_seq_id trunk, llama_seq_id chosen) override {
    Use(trunk);
    Use(chosen);
    if (!isolated_) {
      Release(trunk);
      return chosen;
    }
    seqs_[trunk].tokens = seqs_[chosen].tokens;
    seqs_[trunk].cells.assign(seqs_[trunk].tokens.size(), -1);
    seqs_[trunk].sampler.reset();
    if (seqs_[chosen].sampler) seqs_[trunk].sampler.emplace(seqs_[chosen].sampler->Clone());
    Release(chosen);
    return trunk;
  }
  void Rewind(llama_seq_id seq, llama_pos pos) override {
    Seq& s = Use(seq);
    while (static_cast<llama_pos>(s.tokens.size()) > pos) {
      s.tokens.pop_back();
      Drop(s.cells.back());
      s.cells.pop_back();
    }
    Note();
  }
  void Release(llama_seq_id seq) override {
    Seq& s = Use(seq);
    for (int32_t cell : s.cells) Drop(cell);
    s = Seq();
    Note();
  }
  bool AttachSampler(llama_seq_id seq, Sampler* sampler) override {
    Use(seq).sampler.emplace(std::move(*sampler));
    return true;
  }
  const Sampler* AttachedSampler(llama_seq_id seq) const override {
    const Seq& s = seqs_.at(static_cast<size_t>(seq));
    return s.sampler ? &*s.sampler : nullptr;
  }
  void DetachSampler(llama_seq_id seq) override { Use(seq).sampler.reset(); }

  int32_t n_seq() const override { return n_seq_; }
  int32_t n_seq_in_use() const override {
    return static_cast<int32_t>(
        std::count_if(seqs_.begin(), seqs_.end(), [](const Seq& s) { return s.used; }));
  }
  int64_t n_cells_in_use() const override {
    if (isolated_) {
      int64_t n = 0;
      for (const Seq& s : seqs_) n += static_cast<int64_t>(s.tokens.size());
      return n;
    }
    return std::count_if(refs_.begin(), refs_.end(), [](int32_t r) { return r > 0; });
  }
  int32_t n_cells() const override { return isolated_ ? n_ctx_ * n_seq_ : n_ctx_; }
  int32_t n_cells_per_seq() const override { return n_ctx_; }
  bool isolated() const override { return isolated_; }
  int32_t n_threads() const override { return 2; }

 private:
  struct Seq {
    bool used = false;
    std::vector<llama_token> tokens;
    std::vector<int32_t> cells;  // shared layout: the pool's cell of each position
    std::optional<Sampler> sampler;
  };

  Seq& Use(llama_seq_id id) {
    EXPECT_TRUE(id >= 0 && id < n_seq_ && seqs_[id].used) << "sequence " << id << " not in use";
    if (id < 0 || id >= n_seq_ || !seqs_[id].used) throw Error("sequence not in use");
    return seqs_[id];
  }
  llama_seq_id Take(llama_seq_id id) {
    seqs_[id] = Seq();
    seqs_[id].used = true;
    Note();
    return id;
  }
  llama_seq_id Lowest() {
    for (llama_seq_id id = 0; id < n_seq_; ++id) {
      if (!seqs_[id].used) return Take(id);
    }
    throw Error("no free sequence id");
  }
  void Append(llama_seq_id id, llama_token token) {
    Seq& seq = seqs_[id];
    if (isolated_) {
      if (static_cast<int32_t>(seq.tokens.size()) >= n_ctx_) {
        throw DecodeError("no KV slot for the batch (fake, code 1): stream full");
      }
      seq.cells.push_back(-1);
    } else {
      const auto free = std::find(refs_.begin(), refs_.end(), 0);
      if (free == refs_.end()) throw DecodeError("no KV slot for the batch (fake, code 1)");
      *free = 1;
      seq.cells.push_back(static_cast<int32_t>(free - refs_.begin()));
    }
    seq.tokens.push_back(token);
  }
  void Drop(int32_t cell) {
    if (cell >= 0) --refs_[cell];
  }
  void Note() {
    log_->seqs_in_use = n_seq_in_use();
    log_->cells_in_use = n_cells_in_use();
    log_->peak_seqs = std::max(log_->peak_seqs, log_->seqs_in_use);
    log_->peak_cells = std::max(log_->peak_cells, log_->cells_in_use);
  }

  FakeModel model_;
  FakeLog* log_;
  bool isolated_;
  int32_t n_seq_;
  int32_t n_ctx_;
  std::vector<Seq> seqs_;
  std::vector<int32_t> refs_;  // shared layout: the sequences holding each cell
  std::vector<std::vector<float>> rows_;
  std::vector<llama_token> sampled_;
  std::vector<std::array<float, 3>> states_;
  bool hidden_on_ = false;
  std::vector<llama_token_data> scratch_;
};

inline PolicyDecoderFactory FakeDecoders(FakeModel model, FakeLog* log) {
  return [model, log](const ContextOptions& options) {
    log->contexts.push_back(options);
    return std::make_unique<FakeDecoder>(options, model, log);
  };
}

}  // namespace stars::testing
