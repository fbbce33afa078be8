#include "engine/mode_policy.h"

namespace stars {

std::unique_ptr<ModePolicy> MakeModePolicy(const GenerationParams& params) {
  switch (params.mode) {
    case Mode::kPlain:
      return MakePlainMode(params);
    case Mode::kBestOfN:
      return MakeBestOfNMode(params);
    case Mode::kStars:
      return MakeStarsMode(params);
    case Mode::kCards:
      return MakeCardsMode(params);
  }
  return MakePlainMode(params);
}

}  // namespace stars
