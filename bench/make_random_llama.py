"""Write a random-weight llama GGUF of a given shape, for speed benchmarks (bench/gpu.sh).

The tokenizer is tests/tiny_models.py's byte-level BPE vocab (imported, not copied), padded
with filler tokens up to --vocab so that the output projection and the sampler see a realistic
vocabulary size. Weights are random F16 (norms F32); the text is gibberish, the decode cost is
that of a real model of the same shape.

    python bench/make_random_llama.py OUT.gguf [--shape 1b|tiny] [--vocab N] [--dtype f16|f32]

Shapes (n_embd, layers, heads, KV heads, FFN, vocab):
  1b    2048, 16, 32, 8, 8192, 32000   Llama-3.2-1B-like, about 1.1 G parameters (2.2 GB F16)
  tiny   128,  2,  4, 2,  256,  1024   seconds, for checking the pipeline on a CPU

The logits of the control tokens and of tokens that are not printable ASCII are pinned to 0
(their output rows are zero) while the others spread with a standard deviation of about 1, so
with top-k sampling generation neither stops early nor emits broken UTF-8.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import gguf  # noqa: E402
from gguf import MODEL_ARCH, MODEL_TENSOR  # noqa: E402
from tiny_models import (  # noqa: E402
    CHATML_TEMPLATE,
    LLAMA_HPARAMS,
    _bpe_vocab,
    _name,
    _unprintable_ids,
)

SHAPES: dict[str, dict[str, int]] = {
    "1b": {"n_embd": 2048, "n_layer": 16, "n_head": 32, "n_head_kv": 8, "n_ff": 8192,
           "n_vocab": 32000, "n_ctx_train": 8192},
    "tiny": {"n_embd": 128, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 256,
             "n_vocab": 1024, "n_ctx_train": 8192},
}


def padded_vocab(n_vocab: int) -> tuple[list[str], list[int], list[str], int]:
    """The BPE vocab padded to n_vocab tokens, and the size of the unpadded one."""
    tokens, types, merges = _bpe_vocab()
    n_base = len(tokens)
    if n_vocab < len(tokens):
        raise SystemExit(f"--vocab {n_vocab} is smaller than the base BPE vocab ({len(tokens)})")
    known = set(tokens)
    i = 0
    while len(tokens) < n_vocab:
        # Printable ASCII maps to itself in GPT-2's byte alphabet; no merge produces these,
        # so tokenization is unchanged and the fillers only widen the output layer.
        text = f"<x{i}>"
        i += 1
        if text not in known:
            known.add(text)
            tokens.append(text)
            types.append(int(gguf.TokenType.NORMAL))
    return tokens, types, merges, n_base


def write(path: Path, shape: dict[str, int], *, dtype: str, seed: int) -> Path:
    n_embd, n_ff, n_layer = shape["n_embd"], shape["n_ff"], shape["n_layer"]
    n_head, n_head_kv = shape["n_head"], shape["n_head_kv"]
    if n_embd % n_head or n_head % n_head_kv:
        raise SystemExit("n_embd must divide by n_head, and n_head by n_head_kv")
    head_dim = n_embd // n_head
    n_kv = n_head_kv * head_dim
    tokens, types, merges, n_base = padded_vocab(shape["n_vocab"])
    n_vocab = len(tokens)
    wtype = np.float16 if dtype == "f16" else np.float32
    rng = np.random.default_rng(seed)

    def matrix(rows: int, cols: int, std: float) -> np.ndarray:
        out = rng.standard_normal((rows, cols), dtype=np.float32)
        out *= std
        return out.astype(wtype, copy=False)

    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[MODEL_ARCH.LLAMA])
    writer.add_name(f"random-llama-{n_embd}x{n_layer}")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16"
                         else gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(shape["n_ctx_train"])
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(LLAMA_HPARAMS["rope_freq_base"]))
    writer.add_layer_norm_rms_eps(float(LLAMA_HPARAMS["rms_eps"]))

    writer.add_tokenizer_model("gpt2")
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

    # Scales keep activations O(1) through the stack (no inf/NaN in F16); the values do not
    # change the cost of a decode.
    t = MODEL_TENSOR
    ones = np.ones(n_embd, dtype=np.float32)
    writer.add_tensor(_name(t.TOKEN_EMBD, "weight"), matrix(n_vocab, n_embd, 1.0))
    in_std, ff_std = n_embd**-0.5, n_ff**-0.5
    out_scale = (2.0 * n_layer) ** -0.5
    for i in range(n_layer):
        writer.add_tensor(_name(t.ATTN_NORM, "weight", i), ones)
        writer.add_tensor(_name(t.ATTN_Q, "weight", i), matrix(n_embd, n_embd, in_std))
        writer.add_tensor(_name(t.ATTN_K, "weight", i), matrix(n_kv, n_embd, in_std))
        writer.add_tensor(_name(t.ATTN_V, "weight", i), matrix(n_kv, n_embd, in_std))
        writer.add_tensor(_name(t.ATTN_OUT, "weight", i),
                          matrix(n_embd, n_embd, in_std * out_scale))
        writer.add_tensor(_name(t.FFN_NORM, "weight", i), ones)
        writer.add_tensor(_name(t.FFN_GATE, "weight", i), matrix(n_ff, n_embd, in_std))
        writer.add_tensor(_name(t.FFN_UP, "weight", i), matrix(n_ff, n_embd, in_std))
        writer.add_tensor(_name(t.FFN_DOWN, "weight", i), matrix(n_embd, n_ff, ff_std * out_scale))
    output = matrix(n_vocab, n_embd, in_std)
    output[_unprintable_ids(tokens[:n_base])] = 0
    writer.add_tensor(_name(t.OUTPUT_NORM, "weight"), ones)
    writer.add_tensor(_name(t.OUTPUT, "weight"), output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="GGUF file to write")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--vocab", type=int, default=None, help="vocabulary size (padded)")
    parser.add_argument("--dtype", choices=("f16", "f32"), default="f16")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    shape = dict(SHAPES[args.shape])
    if args.vocab:
        shape["n_vocab"] = args.vocab
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    start = time.perf_counter()
    write(tmp, shape, dtype=args.dtype, seed=args.seed)
    os.replace(tmp, args.out)  # a killed run leaves no half-written model behind
    size = args.out.stat().st_size / 2**30
    print(f"wrote {args.out} ({args.shape}: {shape}, {args.dtype}, {size:.2f} GiB) "
          f"in {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
