#include "llama/backend.h"

#include <mutex>

#include "llama.h"

namespace stars {

void EnsureBackend() {
  static std::once_flag once;
  std::call_once(once, [] { llama_backend_init(); });
}

}  // namespace stars
