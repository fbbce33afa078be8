#include "probe.h"

#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "stars/errors.h"
#include "stars/model.h"
#include "stars/params.h"
#include "stars/probe.h"
#include "stars/rewards.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace stars::python {
namespace {

using Matrix = nb::ndarray<nb::numpy, float, nb::ndim<2>>;
using Messages = std::vector<std::pair<std::string, std::string>>;

Matrix ToMatrix(std::vector<float> values, size_t rows, size_t cols) {
  auto* owned = new std::vector<float>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  return Matrix(owned->data(), {rows, cols}, owner);
}

nb::dict PolicyDict(const PolicyIdentity& id) {
  nb::dict d;
  d["architecture"] = id.architecture;
  d["n_embd"] = id.n_embd;
  d["n_layer"] = id.n_layer;
  d["token_embd_hash"] = id.token_embd_hash;
  d["name"] = id.name;
  return d;
}

PolicyIdentity PolicyOf(const nb::dict& d) {
  PolicyIdentity id;
  id.architecture = nb::cast<std::string>(d["architecture"]);
  id.n_embd = nb::cast<int32_t>(d["n_embd"]);
  id.n_layer = nb::cast<int32_t>(d["n_layer"]);
  id.token_embd_hash = nb::cast<uint64_t>(d["token_embd_hash"]);
  id.name = d.contains("name") ? nb::cast<std::string>(d["name"]) : "";
  return id;
}

// A probe file's contents as a dict (the head's arrays as lists of floats), and back.
nb::dict ProbeDict(const ProbeFile& probe) {
  const ProbeHeadParams& h = probe.head;
  nb::dict d;
  d["layer"] = probe.layer;
  d["n_hidden"] = h.n_hidden;
  d["activation"] = h.activation == ProbeActivation::kRelu ? "relu" : "tanh";
  d["mean"] = h.mean;
  d["std"] = h.std;
  d["hidden_weight"] = h.hidden_weight;
  d["hidden_bias"] = h.hidden_bias;
  d["weight"] = h.weight;
  d["bias"] = h.bias;
  d["output_scale"] = h.output_scale;
  d["output_offset"] = h.output_offset;
  d["policy"] = PolicyDict(probe.policy);
  return d;
}

ProbeFile ProbeOf(const nb::dict& d) {
  ProbeFile probe;
  probe.layer = nb::cast<int32_t>(d["layer"]);
  probe.policy = PolicyOf(nb::cast<nb::dict>(d["policy"]));
  ProbeHeadParams& h = probe.head;
  h.n_in = probe.policy.n_embd;
  h.n_hidden = d.contains("n_hidden") ? nb::cast<int32_t>(d["n_hidden"]) : 0;
  const std::string activation =
      d.contains("activation") ? nb::cast<std::string>(d["activation"]) : "relu";
  if (activation != "relu" && activation != "tanh") {
    throw ParameterError("activation", "activation must be relu or tanh, got '" + activation + "'");
  }
  h.activation = activation == "relu" ? ProbeActivation::kRelu : ProbeActivation::kTanh;
  h.mean = nb::cast<std::vector<float>>(d["mean"]);
  h.std = nb::cast<std::vector<float>>(d["std"]);
  h.weight = nb::cast<std::vector<float>>(d["weight"]);
  if (h.n_hidden > 0) {
    h.hidden_weight = nb::cast<std::vector<float>>(d["hidden_weight"]);
    h.hidden_bias = nb::cast<std::vector<float>>(d["hidden_bias"]);
  }
  h.bias = nb::cast<float>(d["bias"]);
  h.output_scale = d.contains("output_scale") ? nb::cast<float>(d["output_scale"]) : 1.0f;
  h.output_offset = d.contains("output_offset") ? nb::cast<float>(d["output_offset"]) : 0.0f;
  return probe;
}

}  // namespace

void RegisterProbe(nb::module_& m) {
  nb::class_<ProbeReward, GgufReward>(m, "ProbeReward",
                                      "A probe file's head over the policy's hidden states.")
      .def_prop_ro("layer", &ProbeReward::layer)
      .def_prop_ro("n_embd", &ProbeReward::n_embd)
      .def(
          "score_features",
          [](const ProbeReward& reward,
             nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu> features) {
            if (features.shape(1) != static_cast<size_t>(reward.n_embd())) {
              throw ParameterError(
                  "features", "features must have " + std::to_string(reward.n_embd()) +
                                  " columns (n_embd), got " + std::to_string(features.shape(1)));
            }
            std::vector<double> scores(features.shape(0));
            for (size_t i = 0; i < scores.size(); ++i) {
              scores[i] = reward.ScoreFeatures(features.data() + i * features.shape(1));
            }
            return scores;
          },
          "features"_a, "The head's score of each row of an (n, n_embd) float32 array.")
      .def("prompt_tokens", &ProbeReward::PromptTokensOf, "text"_a,
           "A prompt's tokens as the probe renders Begin's text.");

  m.def(
      "make_probe_reward",
      [](const std::string& path, std::shared_ptr<Model> policy, bool chat, int32_t n_threads,
         const std::string& kv_type) {
        ProbeOptions options;
        options.chat = chat;
        options.n_threads = n_threads;
        options.kv_type = ParseKvType(kv_type);
        nb::gil_scoped_release release;
        return MakeProbeReward(path, policy, options);
      },
      "path"_a, "policy"_a, "chat"_a, "n_threads"_a, "kv_type"_a);

  nb::class_<FeatureExtractor>(m, "FeatureExtractor",
                               "The policy's hidden states at the last token of token lists.")
      .def(
          "extract",
          [](FeatureExtractor& extractor, const std::vector<std::vector<int32_t>>& inputs) {
            std::vector<float> features;
            {
              nb::gil_scoped_release release;
              features = extractor.Extract(inputs);
            }
            return ToMatrix(std::move(features), inputs.size(),
                            static_cast<size_t>(extractor.n_embd()));
          },
          "inputs"_a, "An (n, n_embd) float32 array: each input's last-token hidden state.")
      .def_prop_ro("layer", &FeatureExtractor::layer)
      .def_prop_ro("n_embd", &FeatureExtractor::n_embd)
      .def_prop_ro("tokens_decoded", &FeatureExtractor::tokens_decoded);

  m.def(
      "make_feature_extractor",
      [](std::shared_ptr<Model> policy, int32_t layer, int32_t n_threads,
         const std::string& kv_type) {
        const KvType type = ParseKvType(kv_type);
        nb::gil_scoped_release release;
        return MakeFeatureExtractor(std::move(policy), layer, n_threads, type);
      },
      "policy"_a, "layer"_a, "n_threads"_a, "kv_type"_a);

  m.def(
      "prompt_tokens",
      [](const Model& model, const std::string& text, const Messages& messages) {
        std::vector<ChatMessage> chat;
        for (const auto& [role, content] : messages) chat.push_back({role, content});
        return PromptTokens(model, text, chat);
      },
      "model"_a, "text"_a, "messages"_a,
      "A prompt's tokens as the engine renders it: messages through the chat template when "
      "given, else the text as it is.");
  m.def("probe_input", &ProbeInput, "prompt"_a, "response"_a,
        "The tokens a probe decodes for (prompt, response): prompt + response[:-1].");
  m.def(
      "read_probe",
      [](const std::string& path) {
        ProbeFile probe;
        {
          nb::gil_scoped_release release;
          probe = ReadProbeFile(path);
        }
        return ProbeDict(probe);
      },
      "path"_a, "A probe file's contents as a dict.");
  m.def(
      "write_probe",
      [](const std::string& path, const nb::dict& probe) { WriteProbeFile(path, ProbeOf(probe)); },
      "path"_a, "probe"_a, "Writes a probe file from a dict as read_probe returns.");
  m.def(
      "identify_policy",
      [](const Model& model) {
        PolicyIdentity id;
        {
          nb::gil_scoped_release release;
          id = IdentifyPolicy(model);
        }
        return PolicyDict(id);
      },
      "model"_a, "What identifies a policy to a probe: architecture, sizes, token_embd hash.");
}

}  // namespace stars::python
