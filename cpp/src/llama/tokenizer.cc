#include "llama/tokenizer.h"

#include <climits>
#include <cstring>
#include <exception>

#include "stars/errors.h"
#include "stars/model.h"

namespace stars {

Tokenizer::Tokenizer(const Model& model)
    : model_(model.get()), vocab_(model.vocab()), description_(model.description()) {}

template <typename Call>
int32_t Tokenizer::Guarded(const char* what, Call&& call) const {
  try {
    return call();
  } catch (const std::exception& e) {
    throw ModelLoadError("'" + description_ + "': " + what + " failed inside llama.cpp (" +
                         e.what() + "): the model's vocabulary does not match its tokenizer");
  }
}

std::vector<llama_token> Tokenizer::Tokenize(const std::string& text, bool add_special,
                                             bool parse_special) const {
  if (text.size() > static_cast<size_t>(INT32_MAX / 2)) {
    throw Error("text too long to tokenize (" + std::to_string(text.size()) + " bytes)");
  }
  const int32_t length = static_cast<int32_t>(text.size());
  std::vector<llama_token> tokens(text.size() + 2);
  const auto tokenize = [&] {
    return Guarded("tokenizing", [&] {
      return llama_tokenize(vocab_, text.data(), length, tokens.data(),
                            static_cast<int32_t>(tokens.size()), add_special, parse_special);
    });
  };
  int32_t n = tokenize();
  if (n < 0 && n != INT32_MIN) {
    tokens.resize(static_cast<size_t>(-n));
    n = tokenize();
  }
  if (n < 0) throw Error("llama_tokenize failed (code " + std::to_string(n) + ")");
  tokens.resize(static_cast<size_t>(n));
  return tokens;
}

std::vector<llama_token> Tokenizer::TokenizeChat(const std::string& rendered) const {
  std::vector<llama_token> tokens = Tokenize(rendered, true, true);
  if (tokens.size() >= 2 && tokens[0] == bos() && tokens[1] == bos()) tokens.erase(tokens.begin());
  return tokens;
}

std::string Tokenizer::Piece(llama_token token) const {
  char buffer[128];
  int32_t n = Guarded("a token's text", [&] {
    return llama_token_to_piece(vocab_, token, buffer, sizeof(buffer), 0, false);
  });
  if (n >= 0) return std::string(buffer, static_cast<size_t>(n));
  std::string piece(static_cast<size_t>(-n), '\0');
  n = Guarded("a token's text",
              [&] { return llama_token_to_piece(vocab_, token, piece.data(), -n, 0, false); });
  if (n < 0) throw Error("llama_token_to_piece failed for token " + std::to_string(token));
  piece.resize(static_cast<size_t>(n));
  return piece;
}

std::string Tokenizer::Detokenize(const std::vector<llama_token>& tokens) const {
  if (tokens.empty()) return {};
  std::string text(tokens.size() * 8 + 16, '\0');
  const int32_t n_tokens = static_cast<int32_t>(tokens.size());
  const auto detokenize = [&] {
    return Guarded("detokenizing", [&] {
      return llama_detokenize(vocab_, tokens.data(), n_tokens, text.data(),
                              static_cast<int32_t>(text.size()), false, false);
    });
  };
  int32_t n = detokenize();
  if (n < 0 && n != INT32_MIN) {
    text.resize(static_cast<size_t>(-n));
    n = detokenize();
  }
  if (n < 0) throw Error("llama_detokenize failed (code " + std::to_string(n) + ")");
  text.resize(static_cast<size_t>(n));
  return text;
}

bool Tokenizer::SameVocabulary(const Tokenizer& other) const {
  if (vocab_ == other.vocab_) return true;
  if (n_vocab() != other.n_vocab() || llama_vocab_type(vocab_) != llama_vocab_type(other.vocab_)) {
    return false;
  }
  for (llama_token id = 0; id < n_vocab(); ++id) {
    const char* a = llama_vocab_get_text(vocab_, id);
    const char* b = llama_vocab_get_text(other.vocab_, id);
    if ((a == nullptr) != (b == nullptr) || (a != nullptr && std::strcmp(a, b) != 0)) return false;
  }
  return true;
}

std::string Tokenizer::ApplyChatTemplate(const std::vector<ChatMessage>& messages,
                                         bool add_assistant) const {
  const char* tmpl = llama_model_chat_template(model_, nullptr);
  if (tmpl == nullptr) {
    throw ChatTemplateError(
        "the model has no chat template in its GGUF metadata: pass the prompt as a string");
  }
  std::vector<llama_chat_message> chat;
  chat.reserve(messages.size());
  size_t length = 0;
  for (const ChatMessage& message : messages) {
    chat.push_back({message.role.c_str(), message.content.c_str()});
    length += message.role.size() + message.content.size();
  }
  std::string text(2 * length + 256, '\0');
  int32_t n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), add_assistant, text.data(),
                                        static_cast<int32_t>(text.size()));
  if (n > static_cast<int32_t>(text.size())) {
    text.resize(static_cast<size_t>(n));
    n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), add_assistant, text.data(),
                                  static_cast<int32_t>(text.size()));
  }
  if (n < 0) {
    throw ChatTemplateError("llama.cpp does not support this model's chat template: pass the " +
                            std::string("prompt as a string"));
  }
  text.resize(static_cast<size_t>(n));
  return text;
}

}  // namespace stars
