#include "algorithm/attempt_key.h"

namespace stars {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// FNV-1a over bytes, then a SplitMix finalizer so that similar ids land far apart.
uint64_t HashBytes(const void* data, size_t size, uint64_t h) {
  const unsigned char* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
  return SplitMix64(h);
}

// Distinct starting points, so that a token list and an id string never share a key.
constexpr uint64_t kTokensDomain = 0xcbf29ce484222325ULL;
constexpr uint64_t kIdDomain = 0x84222325cbf29ce4ULL;
constexpr uint64_t kAcceptanceStream = 0x5851f42d4c957f2dULL;

}  // namespace

uint64_t PromptKeyOfTokens(const std::vector<int32_t>& tokens, uint64_t occurrence) {
  uint64_t h = kTokensDomain;
  for (int32_t token : tokens) h = HashBytes(&token, sizeof token, h);
  return SplitMix64(h ^ SplitMix64(occurrence));
}

uint64_t PromptKeyOfId(std::string_view id) { return HashBytes(id.data(), id.size(), kIdDomain); }

uint64_t AttemptKey(uint64_t seed, uint64_t prompt_key, uint64_t segment, uint64_t attempt) {
  uint64_t h = SplitMix64(seed);
  h = SplitMix64(h ^ prompt_key);
  h = SplitMix64(h ^ segment);
  return SplitMix64(h ^ attempt);
}

double AcceptanceDraw(uint64_t attempt_key) {
  // The top 53 bits as a double in [0, 1), as std::generate_canonical would.
  return static_cast<double>(SplitMix64(attempt_key ^ kAcceptanceStream) >> 11) * 0x1.0p-53;
}

}  // namespace stars
