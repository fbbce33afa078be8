// The submodule stars_cpp._core.testing: what tests and benchmarks drive by hand, below the
// Engine.
#pragma once

#include <nanobind/nanobind.h>

namespace stars::python {

// Registers KvSession and the batched reward protocol (begin, score, commit, finish) on `m`.
void RegisterTesting(nanobind::module_& m);

}  // namespace stars::python
