#include "stars/reward.h"

namespace stars {

std::string RewardRow::ResponseText() const {
  std::string text;
  text.reserve(trunk_text.size() + segment_text.size());
  text.append(trunk_text);
  text.append(segment_text);
  return text;
}

}  // namespace stars
