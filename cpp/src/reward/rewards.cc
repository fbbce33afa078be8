#include "stars/rewards.h"

#include <cstdlib>
#include <filesystem>
#include <utility>
#include <vector>

#include "reward/causal_reward.h"
#include "reward/classifier_reward.h"
#include "reward/judge_reward.h"
#include "stars/errors.h"
#include "stars/model.h"
#include "stars/probe.h"

namespace stars {
namespace {

const char* kSpecForms =
    "a reward spec must be classifier:PATH[:LABEL], judge:PATH|policy, causal:PATH or probe:PATH";

bool IsInteger(const std::string& text) {
  if (text.empty()) return false;
  size_t i = text[0] == '-' ? 1 : 0;
  if (i == text.size()) return false;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return true;
}

// One label: an output index, or a name among the model's labels.
int32_t ResolveLabel(const std::string& part, const Model& model) {
  if (IsInteger(part)) return static_cast<int32_t>(std::strtol(part.c_str(), nullptr, 10));
  std::string names;
  for (int32_t i = 0; i < model.n_cls_out(); ++i) {
    if (model.ClassifierLabel(i) == part) return i;
    names += (i ? ", '" : "'") + model.ClassifierLabel(i) + "'";
  }
  throw ParameterError("reward", "label '" + part + "' is not one of this classifier's labels [" +
                                     names + "] (" + model.description() + ")");
}

std::shared_ptr<GgufReward> MakeClassifier(const std::string& rest,
                                           const RewardSpecOptions& options) {
  // PATH[:LABEL], unless the whole of it names a file (a path may hold colons).
  std::string path = rest;
  std::string label;
  std::error_code ec;
  const size_t colon = rest.rfind(':');
  if (!std::filesystem::exists(rest, ec) && colon != std::string::npos) {
    path = rest.substr(0, colon);
    label = rest.substr(colon + 1);
  }
  auto model = Model::Load(path, options.n_gpu_layers);
  ClassifierOptions classifier;
  classifier.n_threads = options.n_threads;
  classifier.kv_layout = options.kv_layout;
  classifier.labels = {0};
  if (!label.empty()) {
    const size_t comma = label.find(',');
    classifier.labels = {ResolveLabel(label.substr(0, comma), *model)};
    if (comma != std::string::npos) {
      classifier.labels.push_back(ResolveLabel(label.substr(comma + 1), *model));
    }
  }
  return MakeClassifierReward(std::move(model), classifier);
}

}  // namespace

std::shared_ptr<KvCachedReward> MakeJudgeReward(std::shared_ptr<Model> judge,
                                                const std::shared_ptr<Model>& policy,
                                                const JudgeOptions& options) {
  return std::make_shared<JudgeReward>(std::move(judge), policy, options);
}

std::shared_ptr<ClassifierReward> MakeClassifierReward(std::shared_ptr<Model> model,
                                                       const ClassifierOptions& options) {
  return std::make_shared<ClassifierRewardImpl>(std::move(model), options);
}

std::shared_ptr<KvCachedReward> MakeCausalReward(std::shared_ptr<Model> model,
                                                 const std::string& path,
                                                 const std::shared_ptr<Model>& policy,
                                                 const CausalOptions& options) {
  return std::make_shared<CausalReward>(std::move(model), path, policy, options);
}

namespace {

std::shared_ptr<GgufReward> MakeRewardOf(const std::string& spec,
                                         const std::shared_ptr<Model>& policy,
                                         const RewardSpecOptions& options) {
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
  const JudgeOptions defaults;
  const bool judge_options = options.judge.question != defaults.question ||
                             options.judge.yes != defaults.yes || options.judge.no != defaults.no ||
                             options.judge.layout != defaults.layout;
  if (judge_options && kind != "judge") {
    throw ParameterError("reward",
                         "--judge-* options need a judge reward (--reward judge:PATH|policy)");
  }
  if (colon == std::string::npos || rest.empty()) {
    throw ParameterError("reward", std::string(kSpecForms));
  }
  const int32_t n_ctx = options.policy_n_ctx + kTemplateRoom;
  if (kind == "classifier") return MakeClassifier(rest, options);
  if (kind == "judge") {
    JudgeOptions judge = options.judge;
    judge.n_ctx = n_ctx;
    judge.n_threads = options.n_threads;
    judge.kv_type = options.kv_type;
    judge.kv_layout = options.kv_layout;
    auto model = rest == "policy" ? policy : Model::Load(rest, options.n_gpu_layers);
    return MakeJudgeReward(std::move(model), policy, judge);
  }
  if (kind == "causal") {
    CausalOptions causal;
    causal.n_ctx = n_ctx;
    causal.n_threads = options.n_threads;
    causal.kv_type = options.kv_type;
    causal.kv_layout = options.kv_layout;
    return MakeCausalReward(Model::Load(rest, options.n_gpu_layers), rest, policy, causal);
  }
  if (kind == "probe") {
    ProbeOptions probe;
    probe.n_threads = options.n_threads;
    probe.kv_type = options.kv_type;
    return MakeProbeReward(rest, policy, probe);
  }
  if (kind == "python") {
    throw ParameterError("reward", "python: rewards need the Python package (stars-cpp generate)");
  }
  throw ParameterError(
      "reward", "the reward kind must be classifier, judge, causal or probe, got '" + kind + "'");
}

}  // namespace

std::shared_ptr<GgufReward> MakeReward(const std::string& spec,
                                       const std::shared_ptr<Model>& policy,
                                       const RewardSpecOptions& options) {
  // The error names the spec, keeping its class: a reward's file is not the policy's.
  const std::string where = "--reward '" + spec + "': ";
  try {
    return MakeRewardOf(spec, policy, options);
  } catch (const ModelNotFoundError& e) {
    throw ModelNotFoundError(where + e.what());
  } catch (const ModelLoadError& e) {
    throw ModelLoadError(where + e.what());
  } catch (const ParameterError& e) {
    throw ParameterError(e.param().empty() ? "reward" : e.param(), where + e.what());
  } catch (const RewardError& e) {
    throw RewardError(where + e.what());
  } catch (const ChatTemplateError& e) {
    throw ChatTemplateError(where + e.what());
  }
}

}  // namespace stars
