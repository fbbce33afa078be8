#include "engine/prompt_run.h"

#include <string>
#include <utility>

#include "algorithm/admission.h"
#include "algorithm/response_text.h"
#include "llama/vocabulary.h"
#include "stars/errors.h"

namespace stars {

std::unique_ptr<PromptRun> MakePromptRun(const GenerationParams& params,
                                         std::vector<llama_token> prompt_tokens,
                                         const EngineOptions& options, const std::string& where) {
  const int32_t n_ctx = options.n_ctx;
  auto run = std::make_unique<PromptRun>();
  run->params = params;
  run->policy = MakeModePolicy(params);
  run->prompt_tokens = std::move(prompt_tokens);
  if (run->prompt_tokens.empty()) {
    throw ParameterError("prompt", where + " is empty (no tokens)");
  }
  const int64_t n_prompt = static_cast<int64_t>(run->prompt_tokens.size());
  if (n_prompt >= n_ctx) {
    throw ContextLengthError(
        "prompt", where + " is " + std::to_string(n_prompt) +
                      " tokens, longer than the context (n_ctx=" + std::to_string(n_ctx) + ")");
  }
  run->reserved_cells = CellsPerPrompt(params, n_prompt, options.kv_layout);
  run->reserved_seqs = SequencesPerPrompt(params.mode, params.candidates);
  if (run->reserved_cells > n_ctx) {
    const std::string per =
        options.kv_layout == KvLayout::kIsolated ? " KV cells per sequence" : " KV cells";
    throw ContextLengthError(
        "max_tokens",
        where + " (" + std::to_string(n_prompt) + " tokens) with " +
            "max_tokens=" + std::to_string(params.max_tokens) + " in mode '" +
            ModeName(params.mode) + "' needs up to " + std::to_string(run->reserved_cells) + per +
            ", more than n_ctx=" + std::to_string(n_ctx) + ": raise n_ctx or lower max_tokens");
  }
  return run;
}

bool PushToken(const Vocabulary& vocabulary, const std::vector<std::string>& stop,
               std::string_view trunk_text, llama_token token, const LogprobsOf* logprobs,
               Candidate* candidate) {
  if (vocabulary.IsEog(token)) {
    candidate->done = candidate->ends_response = true;
    return false;
  }
  const size_t old_size = candidate->text.size();
  candidate->offsets.push_back(old_size);
  candidate->tokens.push_back(token);
  std::string piece = vocabulary.Piece(token);
  candidate->text += piece;
  if (logprobs != nullptr) {
    TokenLogprob entry{token, std::move(piece), logprobs->logprob, {}};
    for (const auto& [id, logprob] : logprobs->top) {
      entry.top.push_back({id, vocabulary.Piece(id), logprob, {}});
    }
    candidate->logprobs.push_back(std::move(entry));
  }
  if (!stop.empty()) {
    const std::optional<std::ptrdiff_t> at = FindStop(trunk_text, candidate->text, old_size, stop);
    if (at) {
      // Keep the text before the stop string and the tokens that start before it.
      const size_t keep_bytes = *at > 0 ? static_cast<size_t>(*at) : 0;
      candidate->trunk_cut = *at < 0 ? static_cast<size_t>(-*at) : 0;
      candidate->text.resize(keep_bytes);
      size_t keep = 0;
      while (keep < candidate->offsets.size() && candidate->offsets[keep] < keep_bytes) ++keep;
      candidate->tokens.resize(keep);
      candidate->offsets.resize(keep);
      if (candidate->logprobs.size() > keep) candidate->logprobs.resize(keep);
      candidate->done = candidate->ends_response = true;
      return false;
    }
  }
  if (static_cast<int32_t>(candidate->tokens.size()) >= candidate->cap) {
    candidate->done = true;
    return false;
  }
  return true;
}

}  // namespace stars
