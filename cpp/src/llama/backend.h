// Process-wide llama.cpp initialisation.
#pragma once

namespace stars {

// Calls llama_backend_init once per process. Idempotent and thread-safe.
void EnsureBackend();

}  // namespace stars
