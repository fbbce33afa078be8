// Uses only the public headers (cpp/include/stars; this target has no src/ on its include path):
// loads a model, makes a self-judge through the public factory, scores one round of two
// candidates through the Reward protocol, and generates once. Prints the round's scores, one per
// line, for tests/test_stars_cli.py to compare with the Python package's.
//
//   public_api_test MODEL.gguf PROMPT TRUNK SEGMENT_A SEGMENT_B
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "stars/engine.h"
#include "stars/errors.h"
#include "stars/log.h"
#include "stars/model.h"
#include "stars/params.h"
#include "stars/result.h"
#include "stars/reward.h"
#include "stars/rewards.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: public_api_test MODEL PROMPT TRUNK SEGMENT_A SEGMENT_B\n");
    return 2;
  }
  stars::InstallLog(static_cast<int>(stars::LogLevel::kError) + 1);  // quiet: nothing queued
  try {
    const auto model = stars::Model::Load(argv[1], 0);
    stars::JudgeOptions options;
    options.yes = " yes";  // one token each of the tests' tiny vocabulary
    options.no = " no";
    options.n_ctx = 1024;
    // No policy: the judge reads text (ids pass through only with a policy sharing its vocab).
    const std::shared_ptr<stars::KvCachedReward> judge =
        stars::MakeJudgeReward(model, nullptr, options);
    judge->Begin(0, argv[2]);
    const std::string trunk = argv[3];
    if (!trunk.empty()) judge->Commit(0, nullptr, 0, trunk);
    std::vector<stars::RewardRow> rows;
    for (const char* segment : {argv[4], argv[5]}) {
      stars::RewardRow row;
      row.prompt = 0;
      row.trunk_text = trunk;
      row.segment_text = segment;
      rows.push_back(row);
    }
    std::vector<double> scores;
    judge->Score(rows, &scores);
    judge->Finish(0);
    for (double score : scores) std::printf("%.9g\n", score);
    // The same rows from scratch, through the public text interface.
    const std::vector<std::string> prompts(2, argv[2]);
    for (double score : judge->ScoreTexts(prompts, {trunk + argv[4], trunk + argv[5]})) {
      std::printf("%.9g\n", score);
    }
    const std::vector<int32_t> tokens = model->Tokenize(argv[2], false, false);
    std::printf("%zu prompt tokens, round trip %s\n", tokens.size(),
                model->Detokenize(tokens) == argv[2] ? "exact" : "differs");

    stars::EngineOptions engine_options;
    engine_options.n_ctx = 1024;
    // The judge serves the Engine too: the factory's type is a Reward.
    stars::Engine engine(model, judge, engine_options);
    stars::GenerationParams params;
    params.max_tokens = 8;
    params.segment_tokens = 4;
    stars::Prompt prompt;
    prompt.text = argv[2];
    const auto results = engine.Generate({prompt}, params, {});
    std::printf("generated %zu tokens\n", results.at(0).tokens.size());
    return 0;
  } catch (const stars::Error& e) {
    std::fprintf(stderr, "public_api_test: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "public_api_test: %s\n", e.what());
    return 1;
  }
}
