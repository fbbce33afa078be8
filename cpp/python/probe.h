// Probes in stars_cpp._core: ProbeReward, the feature extractor fit-probe reads features with,
// probe files, and the policy's identity.
#pragma once

#include <nanobind/nanobind.h>

namespace stars::python {

// Registers ProbeReward, FeatureExtractor and the probe functions on `m`.
void RegisterProbe(nanobind::module_& m);

}  // namespace stars::python
