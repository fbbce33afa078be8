// The batched reward interface: rows of (prompt, response) in, floats out.
// The engine calls it once per round with every candidate of every active request, and tells it
// when a request's accepted response (its trunk) grows, so that a reward which caches KV can
// score each candidate from the cached trunk. The engine calls it from its loop thread only; the
// GGUF rewards also serialize calls from other threads (a standalone reward shared with an Engine).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace stars {

// One row to score: the response is trunk + segment, in text and in policy token ids.
// The views stay valid for the duration of the Score call only.
struct RewardRow {
  int32_t prompt = 0;             // the request's prompt id (Begin)
  std::string_view trunk_text;    // the accepted response y
  std::string_view segment_text;  // the candidate segment s (empty for r(x, empty))
  const int32_t* trunk_tokens = nullptr;
  int32_t n_trunk_tokens = 0;
  const int32_t* segment_tokens = nullptr;
  int32_t n_segment_tokens = 0;
  // The policy's hidden state at the row's last decoded token (n_embd floats, at a probe's
  // layer), set by the engine when it has it: a probe then scores it without decoding.
  const float* features = nullptr;

  std::string ResponseText() const;
};

class Reward {
 public:
  virtual ~Reward() = default;

  // A request starts. `prompt` is its id in rows until Finish(prompt); ids are small and are
  // handed out again after Finish. `text` is the prompt as the user wrote it (for chat
  // messages: the last user message).
  virtual void Begin(int32_t prompt, std::string_view text) = 0;

  // Begin, with the prompt's tokens as the policy decodes them, for a reward that reads the
  // policy's own states (a probe). The engine calls this one; the default forgets the tokens.
  virtual void BeginTokens(int32_t prompt, std::string_view text,
                           const std::vector<int32_t>& tokens) {
    (void)tokens;
    Begin(prompt, text);
  }

  // Writes one score per row into `scores` (resized by the callee). Higher is better. The
  // engine rejects a wrong count or a non-finite value with RewardError.
  virtual void Score(const std::vector<RewardRow>& rows, std::vector<double>* scores) = 0;

  // Prompt `prompt`'s trunk grew by `n_tokens` accepted tokens (policy ids) and `text`.
  virtual void Commit(int32_t prompt, const int32_t* tokens, int32_t n_tokens,
                      std::string_view text) {
    (void)prompt, (void)tokens, (void)n_tokens, (void)text;
  }

  // Request `prompt` is done (finished, failed or cancelled); a caching reward frees what it
  // holds for it.
  virtual void Finish(int32_t prompt) { (void)prompt; }

  // Tokens the reward model decoded for `prompt` since Begin (0 for rewards without a model).
  virtual int64_t TokensDecoded(int32_t prompt) const {
    (void)prompt;
    return 0;
  }

  // Rows of `prompt` cut to fit the reward model's context since Begin.
  virtual int64_t RowsTruncated(int32_t prompt) const {
    (void)prompt;
    return 0;
  }
};

}  // namespace stars
