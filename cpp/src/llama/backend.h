// Process-wide llama.cpp initialisation.
#pragma once

namespace stars {

// Calls llama_backend_init once per process, after turning off ggml's batch-size-dependent
// tiled CPU kernels (GGML_CPU_TILED_MM=0) unless the environment sets them. Idempotent and
// thread-safe.
void EnsureBackend();

}  // namespace stars
