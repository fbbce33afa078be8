#include "testing.h"

#include <nanobind/ndarray.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "glue.h"
#include "stars/errors.h"
#include "stars/json_writer.h"
#include "stars/kv_session.h"
#include "stars/model.h"
#include "stars/reward.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace stars::python {

void RegisterTesting(nb::module_& m) {
  nb::class_<KvSession>(m, "KvSession", "Forks, rewinds and batched decodes over one context.")
      .def(nb::init<std::shared_ptr<Model>, int32_t, int32_t, int32_t>(), "model"_a,
           "n_ctx"_a = 512, "n_seq_max"_a = 1, "n_threads"_a = 0)
      .def("acquire", &KvSession::Acquire)
      .def("fork", &KvSession::Fork, "source"_a)
      .def("rewind", &KvSession::Rewind, "seq_id"_a, "pos"_a)
      .def("release", &KvSession::Release, "seq_id"_a)
      .def("clear", &KvSession::Clear)
      .def("decode", &KvSession::Decode, "tokens"_a, "positions"_a, "seq_ids"_a, "outputs"_a,
           nb::call_guard<nb::gil_scoped_release>())
      .def(
          "logits",
          [](const KvSession& session, int32_t batch_index) {
            return FloatArray(session.Logits(batch_index), static_cast<size_t>(session.n_vocab()));
          },
          "batch_index"_a)
      .def_prop_ro("n_ctx", &KvSession::n_ctx)
      .def_prop_ro("n_seq_max", &KvSession::n_seq_max);

  // The batched protocol the engine drives, for driving a native reward by hand. A row is
  // (prompt id, trunk text, segment text, trunk tokens, segment tokens).
  using Row =
      std::tuple<int32_t, std::string, std::string, std::vector<int32_t>, std::vector<int32_t>>;
  m.def(
      "reward_begin",
      [](Reward& reward, int32_t prompt, const std::string& text) { reward.Begin(prompt, text); },
      "reward"_a, "prompt"_a, "text"_a, nb::call_guard<nb::gil_scoped_release>());
  m.def(
      "reward_score",
      [](Reward& reward, const std::vector<Row>& rows,
         const std::vector<std::vector<float>>& features) {
        if (!features.empty() && features.size() != rows.size()) {
          throw ParameterError("features", "one feature vector per row, or none");
        }
        std::vector<RewardRow> views(rows.size());
        for (size_t i = 0; i < rows.size(); ++i) {
          const auto& [prompt, trunk_text, segment_text, trunk, segment] = rows[i];
          views[i] = {prompt,
                      trunk_text,
                      segment_text,
                      trunk.data(),
                      static_cast<int32_t>(trunk.size()),
                      segment.data(),
                      static_cast<int32_t>(segment.size())};
          // A row's features: the engine's hidden state, which a probe scores without decoding.
          if (!features.empty() && !features[i].empty()) views[i].features = features[i].data();
        }
        std::vector<double> scores;
        nb::gil_scoped_release release;
        reward.Score(views, &scores);
        return scores;
      },
      "reward"_a, "rows"_a, "features"_a = std::vector<std::vector<float>>{});
  m.def(
      "reward_commit",
      [](Reward& reward, int32_t prompt, const std::vector<int32_t>& tokens,
         const std::string& text) {
        nb::gil_scoped_release release;
        reward.Commit(prompt, tokens.data(), static_cast<int32_t>(tokens.size()), text);
      },
      "reward"_a, "prompt"_a, "tokens"_a, "text"_a);
  m.def(
      "reward_finish", [](Reward& reward, int32_t prompt) { reward.Finish(prompt); }, "reward"_a,
      "prompt"_a, nb::call_guard<nb::gil_scoped_release>());
  m.def(
      "reward_tokens_decoded",
      [](const Reward& reward, int32_t prompt) { return reward.TokensDecoded(prompt); }, "reward"_a,
      "prompt"_a);
  // The Result JSON's string literal of any bytes, to check its decoding against Python's.
  m.def(
      "json_string",
      [](const nb::bytes& data) { return JsonString(std::string_view(data.c_str(), data.size())); },
      "data"_a);
}

}  // namespace stars::python
