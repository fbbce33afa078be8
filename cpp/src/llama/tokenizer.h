// Tokenize, detokenize and chat templates of one model's vocabulary.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llama.h"
#include "llama/vocabulary.h"
#include "stars/model.h"

namespace stars {

class Tokenizer : public Vocabulary {
 public:
  explicit Tokenizer(const Model& model);

  // `add_special` adds BOS/EOS as the model wants; `parse_special` turns control-token text
  // (as in a rendered chat template) into control tokens. Throws Error on a tokenizer failure,
  // and ModelLoadError naming the model when llama.cpp throws (an inconsistent vocabulary).
  std::vector<llama_token> Tokenize(const std::string& text, bool add_special,
                                    bool parse_special) const;

  // Tokens of a rendered chat template: control-token text becomes control tokens, and BOS is
  // added where the model wants one unless the template already wrote it.
  std::vector<llama_token> TokenizeChat(const std::string& rendered) const;

  // The text of one token; control tokens render as nothing.
  std::string Piece(llama_token token) const override;

  // The text of a token sequence, with llama.cpp's own spacing rules.
  std::string Detokenize(const std::vector<llama_token>& tokens) const;

  // Renders `messages` with the chat template in the GGUF metadata, ending with the assistant
  // turn's opening when `add_assistant`. Throws ChatTemplateError when the model has no template or
  // llama.cpp does not support it.
  std::string ApplyChatTemplate(const std::vector<ChatMessage>& messages,
                                bool add_assistant = true) const;

  bool IsEog(llama_token token) const override { return llama_vocab_is_eog(vocab_, token); }

  // Special tokens (LLAMA_TOKEN_NULL when the vocabulary has none) and whether tokenizing with
  // add_special adds them.
  llama_token bos() const { return llama_vocab_bos(vocab_); }
  llama_token eos() const { return llama_vocab_eos(vocab_); }
  llama_token sep() const { return llama_vocab_sep(vocab_); }
  bool adds_bos() const { return llama_vocab_get_add_bos(vocab_); }
  bool adds_eos() const { return llama_vocab_get_add_eos(vocab_); }
  bool adds_sep() const { return llama_vocab_get_add_sep(vocab_); }

  // True when both vocabularies have the same tokens with the same ids, so token ids can pass
  // from one model to the other unchanged.
  bool SameVocabulary(const Tokenizer& other) const;
  int32_t n_vocab() const override { return llama_vocab_n_tokens(vocab_); }

 private:
  // Runs a llama.cpp vocabulary call: a C++ exception it lets out (std::out_of_range from a
  // vocabulary that lacks a byte token) becomes a ModelLoadError naming the model.
  template <typename Call>
  int32_t Guarded(const char* what, Call&& call) const;

  const llama_model* model_;
  const llama_vocab* vocab_;
  std::string description_;
};

}  // namespace stars
