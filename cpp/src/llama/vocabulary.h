// What sampling reads of a vocabulary: a token's text, whether it ends generation, and the
// vocabulary's size. Tokenizer is the real one; the engine's unit tests give the loop a fake.
#pragma once

#include <cstdint>
#include <string>

#include "llama.h"

namespace stars {

class Vocabulary {
 public:
  virtual ~Vocabulary() = default;
  // The text of one token; control tokens render as nothing.
  virtual std::string Piece(llama_token token) const = 0;
  virtual bool IsEog(llama_token token) const = 0;
  virtual int32_t n_vocab() const = 0;
};

}  // namespace stars
