#include "engine/prompt_run.h"

#include "algorithm/response_text.h"
#include "llama/tokenizer.h"

namespace stars {

bool PushToken(const Tokenizer& tokenizer, const std::vector<std::string>& stop,
               std::string_view trunk_text, llama_token token, const LogprobsOf* logprobs,
               Candidate* candidate) {
  if (tokenizer.IsEog(token)) {
    candidate->done = candidate->ends_response = true;
    return false;
  }
  const size_t old_size = candidate->text.size();
  candidate->offsets.push_back(old_size);
  candidate->tokens.push_back(token);
  candidate->text += tokenizer.Piece(token);
  if (logprobs != nullptr) {
    TokenLogprob entry{token, tokenizer.Piece(token), logprobs->logprob, {}};
    for (const auto& [id, logprob] : logprobs->top) {
      entry.top.push_back({id, tokenizer.Piece(id), logprob, {}});
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
