// One Engine::Generate call: admits prompts into the context as sequence ids and cells allow,
// and runs rounds of lockstep candidate decoding, scoring and acceptance until all are done.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <vector>

#include "algorithm/round_cost.h"
#include "engine/prompt_run.h"
#include "llama/batch.h"
#include "llama/context.h"
#include "llama/sequence_pool.h"
#include "llama/tokenizer.h"
#include "stars/engine.h"

namespace stars {

class Generation {
 public:
  // `costs` is the engine's measured cost model: this call reads it to size rounds and adds its
  // own measurements.
  Generation(Context& context, const Tokenizer& tokenizer, Reward* reward,
             const GenerationParams& params, const GenerateHooks& hooks, RoundCostModel& costs);

  // Sequence ids one prompt holds at once in `params.mode`.
  static int32_t SequencesPerPrompt(const GenerationParams& params);
  // KV cells one prompt of `n_prompt` tokens may hold at once in `params.mode`.
  static int64_t CellsPerPrompt(const GenerationParams& params, int64_t n_prompt);

  std::vector<Result> Run(std::vector<PromptRun> runs);

 private:
  void Admit();
  void DecodePending();
  void SampleFirstTokens();
  void DecodeCandidates();
  void ScoreRound();
  void Decide(PromptRun& run, const double* rewards, size_t n_rewards);
  void AcceptCandidate(PromptRun& run, Candidate& chosen, Segment segment);
  void Finish(PromptRun& run, FinishReason reason);
  void CloseReward(PromptRun& run);
  void ReleaseRound(PromptRun& run);
  void ScoreFinalResponses(std::vector<PromptRun*>& runs);
  void CheckScores(const std::vector<RewardRow>& rows, const std::vector<double>& scores) const;
  double Decode();
  int32_t RoundSize(const PromptRun& run) const;
  void CutResponse(PromptRun& run, size_t size);
  int32_t Cap(const PromptRun& run) const;

  Context& context_;
  const Tokenizer& tokenizer_;
  Reward* reward_;
  const GenerationParams& params_;
  const GenerateHooks& hooks_;
  RoundCostModel& costs_;
  SequencePool pool_;
  Batch batch_;
  std::vector<llama_token_data> scratch_;
  std::deque<PromptRun*> queue_;
  std::vector<PromptRun*> active_;
  int32_t seqs_reserved_ = 0;
  int64_t cells_reserved_ = 0;
  double seconds_policy_ = 0.0;
  double seconds_reward_ = 0.0;
};

}  // namespace stars
