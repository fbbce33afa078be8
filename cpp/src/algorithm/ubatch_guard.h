// A guard against a crash in llama.cpp's CUDA backend: decoding 64 one-token sequences at once
// on SmolLM2-135M's attention shape (9 query heads over 3 KV heads), in builds without
// FlashAttention, died with "CUDA error: an illegal instruction", from C++ and from Python alike,
// on two machines. Smaller batches of the same shape ran. The engine therefore never hands
// llama.cpp a micro-batch of that size for such a shape on a GPU.
#pragma once

#include <cstdint>

namespace stars {

// The largest micro-batch given to llama.cpp for a guarded shape.
inline constexpr int32_t kGuardedUbatch = 32;

// True for a shape the guard applies to: offloaded, with query heads per KV head not a power of
// two (grouped-query attention with 3 heads per group, as SmolLM2-135M has).
bool UbatchGuardApplies(int32_t n_head, int32_t n_head_kv, bool offloaded);

// `requested`, or kGuardedUbatch when that is smaller and the guard applies.
int32_t GuardedUbatch(int32_t requested, int32_t n_head, int32_t n_head_kv, bool offloaded);

}  // namespace stars
