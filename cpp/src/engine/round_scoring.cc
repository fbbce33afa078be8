#include "engine/round_scoring.h"

#include <chrono>
#include <cmath>
#include <exception>
#include <string>

#include "stars/errors.h"

namespace stars {
namespace {

void CheckScores(const std::vector<RewardRow>& rows, const std::vector<double>& scores) {
  if (scores.size() != rows.size()) {
    throw RewardError("reward returned " + std::to_string(scores.size()) + " values for " +
                      std::to_string(rows.size()) + " rows");
  }
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) {
      throw RewardError("reward returned a non-finite value (" + std::to_string(scores[i]) +
                        ") for row " + std::to_string(i));
    }
  }
}

}  // namespace

RewardRow MakeRow(const PromptRun& run, const Candidate* candidate) {
  RewardRow row;
  row.prompt = run.slot;
  row.trunk_text = run.response_text;
  row.trunk_tokens = run.response_tokens.data();
  row.n_trunk_tokens = run.response_length();
  if (candidate != nullptr) {
    row.segment_text = candidate->text;
    row.segment_tokens = candidate->tokens.data();
    row.n_segment_tokens = static_cast<int32_t>(candidate->tokens.size());
    if (!candidate->features.empty()) row.features = candidate->features.data();
  }
  return row;
}

std::vector<double> RoundScorer::Call(const std::vector<PromptRun*>& runs,
                                      const std::vector<RewardRow>& rows) {
  std::vector<double> scores;
  const auto start = std::chrono::steady_clock::now();
  reward_->Score(rows, &scores);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  costs_->RecordReward(static_cast<int64_t>(rows.size()), seconds);
  counters_->RewardCall(runs, static_cast<int64_t>(rows.size()), seconds);
  CheckScores(rows, scores);
  return scores;
}

std::vector<std::vector<double>> RoundScorer::Score(
    const std::vector<PromptRun*>& runs, const std::vector<std::vector<RewardRow>>& rows) {
  std::vector<std::vector<double>> out(runs.size());
  if (runs.empty()) return out;
  std::vector<RewardRow> all;
  for (const auto& r : rows) all.insert(all.end(), r.begin(), r.end());
  std::exception_ptr joint_error;
  try {
    const std::vector<double> scores = Call(runs, all);
    size_t at = 0;
    for (size_t i = 0; i < runs.size(); ++i) {
      out[i].assign(scores.begin() + static_cast<std::ptrdiff_t>(at),
                    scores.begin() + static_cast<std::ptrdiff_t>(at + rows[i].size()));
      at += rows[i].size();
      runs[i]->result.stats.reward_rows += static_cast<int64_t>(rows[i].size());
    }
    return out;
  } catch (...) {
    joint_error = std::current_exception();
  }
  // The joint call failed. A lone request fails with its error. Otherwise each request is
  // scored alone: a reward that fails only on the joint call (a transient error, a limit on rows
  // per call) then fails nobody, and one that fails on some requests' rows fails just those.
  if (runs.size() == 1) {
    FailRun(*runs.front(), joint_error);
    out.front().clear();
    return out;
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    try {
      out[i] = Call({runs[i]}, rows[i]);
      runs[i]->result.stats.reward_rows += static_cast<int64_t>(rows[i].size());
    } catch (...) {
      FailRun(*runs[i], std::current_exception());
      out[i].clear();
    }
  }
  return out;
}

}  // namespace stars
