#include "algorithm/ubatch_guard.h"

#include <algorithm>

namespace stars {

bool UbatchGuardApplies(int32_t n_head, int32_t n_head_kv, bool offloaded) {
  if (!offloaded) return false;
  // A shape that does not even group evenly is guarded too: nothing is known about it.
  if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0) return true;
  const int32_t group = n_head / n_head_kv;
  return (group & (group - 1)) != 0;
}

int32_t GuardedUbatch(int32_t requested, int32_t n_head, int32_t n_head_kv, bool offloaded) {
  return UbatchGuardApplies(n_head, n_head_kv, offloaded) ? std::min(requested, kGuardedUbatch)
                                                          : requested;
}

}  // namespace stars
