// The probe file: a small GGUF written and read with ggml's gguf API. Key-value metadata holds
// the layer, the head's kind and scalars, and the policy's identity; F32 tensors hold the
// normalisation and the head's weights. ReadProbeFile, WriteProbeFile and IdentifyPolicy are
// declared in stars/probe.h; this header names the keys and the hash for tests and tools.
#pragma once

#include <cstdint>
#include <string>

#include "stars/probe.h"

namespace stars {

inline constexpr const char* kProbeArchitecture = "stars-probe";
inline constexpr uint32_t kProbeVersion = 1;

// FNV-1a 64 of `size` bytes of `path` from `offset`. Throws ModelLoadError when the file is
// shorter.
uint64_t HashFileBytes(const std::string& path, uint64_t offset, uint64_t size);

}  // namespace stars
