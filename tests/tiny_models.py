"""Tiny random-weight GGUF models for fast tests.

Two writers, both deterministic for a given seed and done in well under a second:

- ``write_tiny_llama``: a llama-architecture causal LM with a byte-level BPE
  ("gpt2") tokenizer, so any text round-trips exactly, and a ChatML template.
- ``write_tiny_bert_classifier``: a BERT sequence classifier (RANK pooling, one
  output per label) with a WordPiece ("bert") tokenizer, or the same encoder
  without a classification head.

The weights are random, so the text is gibberish and the scores are arbitrary;
what the tests get is real llama.cpp models of the right shape that load in
milliseconds.
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from pathlib import Path

import gguf
import numpy as np
from gguf import MODEL_ARCH, MODEL_TENSOR, TENSOR_NAMES, TokenType

__all__ = [
    "BERT_HPARAMS",
    "CHATML_TEMPLATE",
    "LLAMA_HPARAMS",
    "write_tiny_bert_classifier",
    "write_tiny_llama",
    "write_tiny_models",
]

# llama-cpp-python recognises this exact string as its "chatml" format, and
# llama.cpp's llama_chat_apply_template detects ChatML from "<|im_start|>".
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAMA_HPARAMS: dict[str, int | float] = {
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 4,
    "n_head_kv": 2,
    "n_ff": 128,
    "n_ctx_train": 2048,
    "rms_eps": 1e-5,
    "rope_freq_base": 10000.0,
}

BERT_HPARAMS: dict[str, int | float] = {
    "n_embd": 32,
    "n_layer": 2,
    "n_head": 2,
    "n_ff": 64,
    "n_ctx_train": 512,
    "n_token_types": 2,
    "norm_eps": 1e-12,
}

# Words the tiny BPE vocab gets whole tokens for; anything else falls back to
# shorter pieces and, at worst, single bytes.
_COMMON_TEXT = """
the of and to in is was for on that with as it be at by this had not are but
from or have an they one you were her all she there would we him has when who
will more no if out so said what up its about into than can only new some time
two may then do first any my now like our over man me even most made after also
did many must back years where much your way well down good very make world day
old year hello cat sat dog mat story once upon happy sad bad love nice help
answer please thank yes sure write poem sun moon tree bird red blue green
"""
_COMMON_WORDS = tuple(_COMMON_TEXT.split())
_CAPITALISED_WORDS = ("The", "Hello", "I", "It", "He", "She", "We", "They", "Once")
_BARE_PIECES = (
    *("user", "assistant", "system"),
    *("ing", "ed", "er", "es", "ly", "re", "on", "an", "in", "th", "he"),
    *("'s", "'t", "..", "\n\n", "  "),
)

_LLAMA_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

_BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_SENTIMENT_TEXT = """
great terrible awful wonderful excellent poor best worst happy sad angry fine ok
okay amazing boring fun funny movie film book food service really not never
always recommend enjoyed liked loved hated
"""
_BERT_WORDS = _COMMON_WORDS + tuple(_SENTIMENT_TEXT.split())
_BERT_SUFFIXES = ("ing", "ed", "ly", "er", "est", "s", "es", "tion", "ness", "ful")
# WPM marks the start of every word with this phantom space.
_WORD_START = "\u2581"


# See write_tiny_llama: the constant residual dimension and the logits it sets.
_BIAS_DIM_VALUE = 6.0
_OUTPUT_STD = 0.2
# Variance of the other residual dimensions at the final norm, measured with
# these weight scales; it sets how large the bias input is after the norm.
_RESIDUAL_VAR = 3.0
_SUPPRESSED_LOGIT = -20.0


def _check_unique(tokens: list[str]) -> None:
    # llama.cpp aborts the whole process on a duplicated token string
    # (GGML_ASSERT in the vocab loader), so fail here, catchably, instead.
    if len(tokens) != len(set(tokens)):
        raise RuntimeError("tiny model vocab has duplicated token strings")


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable code points."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\xa1"), ord("\xac") + 1))
        + list(range(ord("\xae"), ord("\xff") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, codes)}


def _bpe_vocab() -> tuple[list[str], list[int], list[str]]:
    """Byte-level BPE vocab: specials, all 256 bytes, then chained merges.

    Every merge is ``prefix + next symbol`` of some word, so every merge result
    and every prefix it builds on is itself a token; llama.cpp needs that, and
    any text still tokenizes because all bytes are present.
    """
    byte_map = _byte_to_unicode()
    tokens = list(_LLAMA_SPECIALS) + [byte_map[b] for b in range(256)]
    types = [TokenType.CONTROL] * len(_LLAMA_SPECIALS) + [TokenType.NORMAL] * 256
    known = set(tokens)
    merges: list[str] = []

    def add_word(word: str) -> None:
        symbols = [byte_map[b] for b in word.encode("utf-8")]
        prefix = symbols[0]
        for symbol in symbols[1:]:
            merged = prefix + symbol
            if merged not in known:
                known.add(merged)
                tokens.append(merged)
                types.append(TokenType.NORMAL)
                merges.append(f"{prefix} {symbol}")
            prefix = merged

    # Earlier merges win, so whole words go first and bare pieces last.
    for word in _COMMON_WORDS:
        add_word(" " + word)
    for word in _CAPITALISED_WORDS:
        add_word(" " + word)
        add_word(word)
    for piece in _BARE_PIECES:
        add_word(piece)

    _check_unique(tokens)
    return tokens, [int(t) for t in types], merges


def _unprintable_ids(tokens: list[str]) -> list[int]:
    """Ids of special tokens and of tokens with bytes other than printable ASCII."""
    unicode_to_byte = {c: b for b, c in _byte_to_unicode().items()}
    allowed = set(range(0x20, 0x7F)) | {0x0A}
    ids = [tokens.index(text) for text in _LLAMA_SPECIALS]
    for token_id, text in enumerate(tokens):
        if text in _LLAMA_SPECIALS:
            continue
        raw = [unicode_to_byte.get(c) for c in text]
        if any(b is None or b not in allowed for b in raw):
            ids.append(token_id)
    return ids


def _wpm_vocab() -> tuple[list[str], list[int]]:
    """WordPiece vocab as llama.cpp wants it: word-initial pieces start with U+2581."""
    chars = string.ascii_lowercase + string.digits + string.punctuation
    pieces: list[str] = []
    pieces += [_WORD_START + c for c in chars]
    pieces += list(chars)
    pieces += [_WORD_START + w for w in _BERT_WORDS]
    pieces += list(_BERT_SUFFIXES)
    # Order-preserving de-duplication (word lists overlap).
    pieces = [p for p in dict.fromkeys(pieces) if p not in _BERT_SPECIALS]
    tokens = list(_BERT_SPECIALS) + pieces
    types = [TokenType.CONTROL] * len(_BERT_SPECIALS)
    types += [TokenType.NORMAL] * len(pieces)
    _check_unique(tokens)
    return tokens, [int(t) for t in types]


def _name(tensor: MODEL_TENSOR, suffix: str, bid: int | None = None) -> str:
    return TENSOR_NAMES[tensor].format(bid=bid) + "." + suffix


def _prepare(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _finish(writer: gguf.GGUFWriter, tensors: dict[str, np.ndarray]) -> None:
    for name, data in tensors.items():
        writer.add_tensor(name, np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_llama(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    eog_logit: float = _SUPPRESSED_LOGIT,
    metadata: dict[str, object] | None = None,
) -> Path:
    """Write a 2-layer, 64-wide llama GGUF with random float32 weights.

    ``metadata`` adds key-value pairs: a list of floats as a float32 array, a float as float32,
    an int as int32 (e.g. a causal reward head, ``stars.reward.head.weight``).

    Tokenizer: byte-level BPE (``gpt2``, pre-tokenizer ``smollm``) with
    ``<|endoftext|>`` (BOS), ``<|im_start|>`` and ``<|im_end|>`` (EOS and EOT)
    as control tokens, and the ChatML chat template.

    Tokens that do not decode to printable ASCII or a newline (lone bytes,
    control characters, ``<|im_start|>``) get a logit of about -20, so sampled
    text is plain ASCII. Both end-of-generation tokens (``<|im_end|>``,
    ``<|endoftext|>``) get a logit of about ``eog_logit`` whatever the context:
    by default generation practically never stops by itself, so runs reach
    their token limit. Raise it for early stops: at temperature 0.8 and top-k
    40, ``eog_logit=2.0`` gives a median of about 45 tokens before the end of
    generation, 3.0 about 10 and 4.0 about 2.
    """
    path = _prepare(path)
    hp = LLAMA_HPARAMS
    n_embd, n_ff = int(hp["n_embd"]), int(hp["n_ff"])
    n_head, n_head_kv = int(hp["n_head"]), int(hp["n_head_kv"])
    n_layer = int(hp["n_layer"])
    head_dim = n_embd // n_head
    n_kv = n_head_kv * head_dim
    tokens, types, merges = _bpe_vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def normal(std: float, *shape: int) -> np.ndarray:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[MODEL_ARCH.LLAMA])
    writer.add_name("tiny-random-llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for key, value in (metadata or {}).items():
        if isinstance(value, (list, np.ndarray)):
            writer.add_array(key, [float(v) for v in value])
        elif isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_int32(key, int(value))
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(int(hp["n_ctx_train"]))
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(hp["rope_freq_base"]))
    writer.add_layer_norm_rms_eps(float(hp["rms_eps"]))

    writer.add_tokenizer_model("gpt2")
    # "smollm" keeps clean_spaces off, so llama_detokenize is byte-exact too.
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_eot_token_id(tokens.index("<|im_end|>"))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHATML_TEMPLATE)

    # Dimension 0 of the residual stream is held constant (no layer writes to
    # it), so after the final RMS norm it is a bias input to the output
    # projection. That pins the logits of end-of-generation and unprintable
    # tokens; all other logits come from random weights and the context.
    t = MODEL_TENSOR
    embd = normal(1.0, n_vocab, n_embd)
    embd[:, 0] = _BIAS_DIM_VALUE
    tensors = {_name(t.TOKEN_EMBD, "weight"): embd}
    for i in range(n_layer):
        attn_out = normal(0.05, n_embd, n_embd)
        ffn_down = normal(0.05, n_embd, n_ff)
        attn_out[0] = 0.0
        ffn_down[0] = 0.0
        tensors[_name(t.ATTN_NORM, "weight", i)] = np.ones(n_embd)
        tensors[_name(t.ATTN_Q, "weight", i)] = normal(0.2, n_embd, n_embd)
        tensors[_name(t.ATTN_K, "weight", i)] = normal(0.2, n_kv, n_embd)
        tensors[_name(t.ATTN_V, "weight", i)] = normal(0.2, n_kv, n_embd)
        tensors[_name(t.ATTN_OUT, "weight", i)] = attn_out
        tensors[_name(t.FFN_NORM, "weight", i)] = np.ones(n_embd)
        tensors[_name(t.FFN_GATE, "weight", i)] = normal(0.2, n_ff, n_embd)
        tensors[_name(t.FFN_UP, "weight", i)] = normal(0.2, n_ff, n_embd)
        tensors[_name(t.FFN_DOWN, "weight", i)] = ffn_down

    output = normal(_OUTPUT_STD, n_vocab, n_embd)
    output[:, 0] = 0.0
    rms = np.sqrt((_BIAS_DIM_VALUE**2 + (n_embd - 1) * _RESIDUAL_VAR) / n_embd)
    bias_input = _BIAS_DIM_VALUE / rms
    for token_id in _unprintable_ids(tokens):
        output[token_id] = 0.0
        output[token_id, 0] = _SUPPRESSED_LOGIT / bias_input
    for text in ("<|im_end|>", "<|endoftext|>"):
        token_id = tokens.index(text)
        output[token_id] = 0.0
        output[token_id, 0] = eog_logit / bias_input
    tensors[_name(t.OUTPUT_NORM, "weight")] = np.ones(n_embd)
    tensors[_name(t.OUTPUT, "weight")] = output
    _finish(writer, tensors)
    return path


def write_tiny_bert_classifier(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    labels: Sequence[str] = ("negative", "positive"),
    with_head: bool = True,
) -> Path:
    """Write a 2-layer, 32-wide BERT GGUF with random float32 weights.

    With ``with_head`` (the default) it is a sequence classifier: pooling type
    RANK, ``classifier.output_labels`` = ``labels`` and the ``cls`` /
    ``cls.output`` head, so llama.cpp yields ``len(labels)`` scores per
    sequence. Without it, it is a plain sentence encoder (MEAN pooling, no
    labels, no head tensors): the kind of model a classifier reward must refuse.
    Note that llama.cpp still reports ``llama_model_n_cls_out() == 1`` for it.
    """
    labels = [str(label) for label in labels]
    if with_head and not labels:
        raise ValueError("a classifier needs at least one label")
    path = _prepare(path)
    hp = BERT_HPARAMS
    n_embd, n_ff = int(hp["n_embd"]), int(hp["n_ff"])
    n_ctx_train, n_types = int(hp["n_ctx_train"]), int(hp["n_token_types"])
    tokens, types = _wpm_vocab()
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)

    def normal(std: float, *shape: int) -> np.ndarray:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    def norm_weight() -> np.ndarray:
        return 1.0 + normal(0.05, n_embd)

    name = "tiny-random-bert-classifier" if with_head else "tiny-random-bert"
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[MODEL_ARCH.BERT])
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(int(hp["n_layer"]))
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(int(hp["n_head"]))
    writer.add_layer_norm_eps(float(hp["norm_eps"]))
    writer.add_causal_attention(False)
    if with_head:
        writer.add_pooling_type(gguf.PoolingType.RANK)
        writer.add_classifier_output_labels(labels)
    else:
        writer.add_pooling_type(gguf.PoolingType.MEAN)

    writer.add_tokenizer_model("bert")
    writer.add_token_type_count(n_types)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_pad_token_id(tokens.index("[PAD]"))
    writer.add_unk_token_id(tokens.index("[UNK]"))
    # llama.cpp's WPM tokenizer adds BOS ([CLS]) in front and [SEP] behind.
    writer.add_bos_token_id(tokens.index("[CLS]"))
    writer.add_sep_token_id(tokens.index("[SEP]"))
    writer.add_mask_token_id(tokens.index("[MASK]"))
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)

    # Wider than BERT's 0.02 init, so different texts get clearly different
    # scores.
    t = MODEL_TENSOR
    tensors = {
        _name(t.TOKEN_EMBD, "weight"): normal(0.5, n_vocab, n_embd),
        _name(t.TOKEN_TYPES, "weight"): normal(0.1, n_types, n_embd),
        _name(t.POS_EMBD, "weight"): normal(0.1, n_ctx_train, n_embd),
        _name(t.TOKEN_EMBD_NORM, "weight"): norm_weight(),
        _name(t.TOKEN_EMBD_NORM, "bias"): normal(0.02, n_embd),
    }
    for i in range(int(hp["n_layer"])):
        for tensor in (t.ATTN_Q, t.ATTN_K, t.ATTN_V, t.ATTN_OUT):
            tensors[_name(tensor, "weight", i)] = normal(0.2, n_embd, n_embd)
            tensors[_name(tensor, "bias", i)] = normal(0.02, n_embd)
        tensors[_name(t.ATTN_OUT_NORM, "weight", i)] = norm_weight()
        tensors[_name(t.ATTN_OUT_NORM, "bias", i)] = normal(0.02, n_embd)
        tensors[_name(t.FFN_UP, "weight", i)] = normal(0.2, n_ff, n_embd)
        tensors[_name(t.FFN_UP, "bias", i)] = normal(0.02, n_ff)
        tensors[_name(t.FFN_DOWN, "weight", i)] = normal(0.2, n_embd, n_ff)
        tensors[_name(t.FFN_DOWN, "bias", i)] = normal(0.02, n_embd)
        tensors[_name(t.LAYER_OUT_NORM, "weight", i)] = norm_weight()
        tensors[_name(t.LAYER_OUT_NORM, "bias", i)] = normal(0.02, n_embd)
    if with_head:
        n_out = len(labels)
        tensors[_name(t.CLS, "weight")] = normal(0.3, n_embd, n_embd)
        tensors[_name(t.CLS, "bias")] = normal(0.02, n_embd)
        tensors[_name(t.CLS_OUT, "weight")] = normal(0.5, n_out, n_embd)
        tensors[_name(t.CLS_OUT, "bias")] = normal(0.02, n_out)
    _finish(writer, tensors)
    return path


def write_tiny_models(directory: str | os.PathLike[str], *, seed: int = 0) -> dict[str, Path]:
    """Write the tiny llama and BERT classifier into ``directory``.

    Returns ``{"llama": ..., "bert": ...}``.
    """
    directory = Path(directory)
    return {
        "llama": write_tiny_llama(directory / "tiny-llama.gguf", seed=seed),
        "bert": write_tiny_bert_classifier(directory / "tiny-bert-classifier.gguf", seed=seed),
    }
