// The round's decoding: the policy decoder (made, and made again larger, from the options the
// loop asks for), the batch layout of a round's steps, and every token draw, on the host from a
// logits row or read where llama.cpp drew it in the graph: the one place where host and backend
// sampling differ.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "algorithm/round_cost.h"
#include "engine/loop_counters.h"
#include "engine/prompt_run.h"
#include "engine/sampling_pool.h"
#include "llama/policy_decoder.h"
#include "llama/vocabulary.h"

namespace stars {

class RoundDecoder {
 public:
  RoundDecoder(PolicyDecoderFactory make_decoder, const Vocabulary& vocabulary,
               RoundCostModel* costs, LoopCounters* counters)
      : make_decoder_(std::move(make_decoder)),
        vocabulary_(vocabulary),
        costs_(costs),
        counters_(counters) {}

  // (Re)makes the decoder for `options`; the old one's memory goes back first.
  void Make(const ContextOptions& options);
  bool made() const { return decoder_ != nullptr; }
  PolicyDecoder& decoder() const { return *decoder_; }
  const SamplingPool* sampling() const { return sampling_.get(); }

  // Step 0 of a round: decodes the pending tokens of `runs`' trunks and calls
  // `on_trunk(run, batch_index)` for each, with its output row. Returns the seconds spent.
  double DecodeTrunks(const std::vector<PromptRun*>& runs,
                      const std::function<void(PromptRun&, int32_t)>& on_trunk);
  // One step: decodes the last token of each live candidate of `runs` and draws its next one
  // (PushToken), and decodes the pending prompt of each of `joining`, calling
  // `on_joined(run, batch_index)` with its output row. Returns the seconds spent.
  double Step(const std::vector<PromptRun*>& runs, const std::vector<PromptRun*>& joining,
              const std::function<void(PromptRun&, int32_t)>& on_joined);
  // Fills each job's token: read from the graph's draw, or sampled on the host.
  void Draw(std::vector<SamplingJob>& jobs);
  // Keeps the last layer's hidden state (`n_embd` floats) of each candidate that ends at its
  // cap, for a probe reward (Candidate::features); 0: none.
  void ReadHiddenStates(int32_t n_embd) { n_embd_ = n_embd; }

 private:
  // Isolated layout: llama.cpp puts only consecutive sequence ids in one micro-batch, so a done
  // candidate whose id sits between live ones would split the step into another pass over the
  // weights. Such candidates decode a padding token instead (a row of the same pass, far
  // cheaper), dropped if they are accepted.
  void PadGaps(const std::vector<PromptRun*>& runs);

  PolicyDecoderFactory make_decoder_;
  const Vocabulary& vocabulary_;
  RoundCostModel* costs_;
  LoopCounters* counters_;
  std::unique_ptr<PolicyDecoder> decoder_;
  std::unique_ptr<SamplingPool> sampling_;  // host draws, started with the first decoder
  int32_t n_embd_ = 0;                      // ReadHiddenStates

  // Step's buffers, kept between steps.
  std::vector<DecodeJob> jobs_;
  std::vector<std::pair<PromptRun*, Candidate*>> owners_;  // nullptr candidate: a prefill
  std::vector<SamplingJob> draws_;
  std::vector<Candidate*> paddable_;  // PadGaps: by sequence id
  std::vector<llama_seq_id> live_ids_;
};

// The alternatives a draw computes: -1 when the request asked for no logprobs.
inline int32_t LogprobsWanted(const GenerationParams& params) {
  return params.logprobs ? params.top_logprobs : -1;
}

}  // namespace stars
