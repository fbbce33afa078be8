// Process-wide facts of the llama.cpp runtime under every Engine and reward.
#pragma once

#include <cstdint>

namespace stars {

// The most sequence ids one llama.cpp context holds (its LLAMA_MAX_SEQ): the bound of
// EngineOptions::n_seq_max.
int32_t MaxSequences();

// llama.cpp contexts alive in the process now, policy and reward contexts alike.
int64_t LiveContexts();

// Waits for the loop threads of Engines destroyed on their own loop thread (which cannot join
// themselves) to end. An embedding interpreter calls it before it finalizes, after closing its
// Engines, so that no loop thread outlives it.
void JoinAbandonedEngines();

}  // namespace stars
