#include "llama/backend.h"

#include <cstdlib>
#include <mutex>

#include "llama.h"

namespace stars {

void EnsureBackend() {
  static std::once_flag once;
  std::call_once(once, [] {
    // ggml's tiled CPU kernels for K-quants (Q4_K, Q6_K, ...) take over a matrix product from 8
    // rows up, with other rounding than the kernel below 8: a sequence's logits would depend on
    // how many others step with it. Off unless the user says otherwise; ggml reads it once, at
    // the process's first matrix product.
    setenv("GGML_CPU_TILED_MM", "0", /*overwrite=*/0);
    llama_backend_init();
  });
}

}  // namespace stars
