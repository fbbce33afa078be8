// The state of one request in the engine loop: its parameters and sink, its trunk sequence, the
// accepted response, the candidates of the current round and the search for the current segment.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "algorithm/token_logprobs.h"
#include "engine/mode_policy.h"
#include "llama.h"
#include "llama/sampler.h"
#include "stars/engine.h"
#include "stars/params.h"
#include "stars/result.h"

namespace stars {

class Vocabulary;

struct Candidate {
  llama_seq_id seq = -1;
  uint64_t attempt_key = 0;  // seeds the sampler and the soft rule's draw
  Sampler sampler;
  llama_pos fork_pos = 0;  // first position of the segment in its sequence
  llama_pos next_pos = 0;  // position at which the next token is decoded
  int32_t cap = 0;         // most tokens this candidate may take
  // Cells decoded past next_pos while it was done, to keep a step's ids consecutive (isolated
  // layout): not tokens of the candidate, dropped if it is accepted.
  int32_t n_padding = 0;
  int32_t batch_index = -1;
  bool on_backend = false;  // its sampler is attached to `seq`: llama.cpp draws its tokens
  std::vector<llama_token> tokens;
  std::vector<TokenLogprob> logprobs;  // one per token, when the request asked for them
  std::vector<size_t> offsets;         // byte offset of each token's text in `text`
  std::string text;
  bool done = false;
  bool ends_response = false;  // end-of-generation token or stop string
  // Bytes at the end of the accepted response where a stop string began that this candidate
  // completed: accepting it cuts the response there.
  size_t trunk_cut = 0;
  double reward = 0.0;
  // The policy's hidden state at its last decoded token, when that is its second-to-last (it
  // ended at its cap): a probe reward reads it (RewardRow::features) instead of decoding.
  std::vector<float> features;
  // The row after its last token, when an entropy rise ended it (CARDS): every token is then
  // decoded, and the next round starts from this row.
  std::vector<float> next_logits;

  Candidate(llama_seq_id seq_id, uint64_t key, Sampler&& chain, llama_pos pos, int32_t max_tokens)
      : seq(seq_id),
        attempt_key(key),
        sampler(std::move(chain)),
        fork_pos(pos),
        next_pos(pos),
        cap(max_tokens) {}

  // Tokens of this candidate already in its sequence's KV cells.
  int32_t n_decoded() const { return static_cast<int32_t>(next_pos - fork_pos); }
};

struct PromptRun {
  RequestId id = 0;
  GenerationParams params;
  std::shared_ptr<RequestSink> sink;
  int32_t slot = -1;  // the request's prompt id for the reward while it runs
  bool reward_begun = false;
  bool cancelled = false;
  std::chrono::steady_clock::time_point admitted;
  uint64_t key = 0;  // the prompt key: its samples depend on it, not on its position
  std::string reward_text;
  std::vector<llama_token> prompt_tokens;
  int64_t reserved_cells = 0;
  int32_t reserved_seqs = 0;

  llama_seq_id trunk = -1;
  llama_pos n_past = 0;              // trunk cells decoded
  std::vector<llama_token> pending;  // trunk tokens sampled but not yet decoded
  std::vector<float> logits;         // the trunk's next-token logits (host sampling)
  // Its candidates sample inside llama.cpp's graph. In plain mode the trunk's sequence carries
  // the chain too, and draws each round's first token (`first_token`) in the graph.
  bool backend = false;
  llama_token first_token = LLAMA_TOKEN_NULL;
  std::vector<llama_token> response_tokens;
  std::vector<TokenLogprob> response_logprobs;  // when the request asked for them
  std::vector<size_t> response_offsets;         // byte offset of each response token's text
  std::string response_text;
  size_t n_shown = 0;  // bytes of response_text already given out in segments

  // Plain mode: one sampler for the whole response, lent to each round's candidate, so that the
  // text does not depend on where segments (and a request's joining step) fall.
  std::optional<Sampler> plain_sampler;
  std::vector<Candidate> candidates;   // this round's
  std::optional<Candidate> best;       // the best of earlier rounds of this segment
  std::unique_ptr<ModePolicy> policy;  // what its mode decides (mode_policy.h)
  int64_t candidates_sampled = 0;

  bool finished = false;     // done: a Result, or `error`
  std::exception_ptr error;  // the request failed with this
  Result result;

  int32_t response_length() const { return static_cast<int32_t>(response_tokens.size()); }
  int32_t segment_index() const { return static_cast<int32_t>(result.segments.size()); }
};

// A request for `prompt_tokens` under `params` (validated), in the loop of an engine with
// `options`: its mode's policy and the peak ids and cells it reserves. Throws ParameterError for
// an empty prompt and ContextLengthError when it cannot fit n_ctx; `where` names the prompt.
std::unique_ptr<PromptRun> MakePromptRun(const GenerationParams& params,
                                         std::vector<llama_token> prompt_tokens,
                                         const EngineOptions& options, const std::string& where);

// `run` failed with `error`: the loop retires it and hands the error to its sink.
inline void FailRun(PromptRun& run, std::exception_ptr error) {
  run.finished = true;
  run.error = std::move(error);
}

// Appends `token` to `candidate`, or ends it at an end-of-generation token, a stop string or its
// cap. Stop strings are matched on the whole response, `trunk_text` (the accepted response)
// followed by the candidate. `logprobs`, when not null, go with the token (their texts filled
// in). Returns false once the candidate is done.
bool PushToken(const Vocabulary& vocabulary, const std::vector<std::string>& stop,
               std::string_view trunk_text, llama_token token, const LogprobsOf* logprobs,
               Candidate* candidate);

}  // namespace stars
