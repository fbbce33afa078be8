// Checks of a model file before llama.cpp loads it. llama.cpp answers most bad files with a null
// model, but a few header values reach a GGML_ASSERT and abort the whole process; those, and the
// commonest shape mismatches, are found here first and reported with the file and the problem.
#pragma once

#include <string>

namespace stars {

// Throws ModelNotFoundError when `path` does not exist, and ModelLoadError naming `path` and
// the problem when it is a directory, empty, not a GGUF, or its header holds what llama.cpp would
// abort on or refuse: a repeated vocabulary string, a block count outside [1, 512], more
// next-token-prediction layers than blocks, expert counts that do not fit together, an unknown
// rope scaling type, a tensor with an empty dimension, a token embedding whose row count is not
// the vocabulary size, or a block tensor beyond the block count.
// Reads only the header, never tensor data.
void CheckModelFile(const std::string& path);

}  // namespace stars
