"""Raw batched llama_decode throughput against the engine's achieved policy throughput, with
host and with backend sampling, and STARS against plain decoding per accepted token.

The ceiling: one prompt decoded and forked into B sequences of a unified KV cache, then one
token each per llama_decode with logits for every row (the engine needs them to sample),
through llama-cpp-python's low-level API with the engine's context settings. The engine: best_of_n
with candidates=B on the same prompt, so each decode step carries B tokens; its rate is
policy tokens sampled over seconds_policy (decode plus sampling), once per sampling path
(Engine(sampling="host") and "backend"). Last, STARS with N = 4 and a cheap Python reward
against plain decoding: wall ms per accepted token, and their ratio, per sampling path.

    python bench/decode_ceiling.py [--quick] [--model PATH] [--n-gpu-layers 99]
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path

import llama_cpp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import stars_cpp  # noqa: E402
from stars_cpp.models import smollm2_path  # noqa: E402

PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who"
BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64]


@llama_cpp.llama_log_callback
def _quiet(level, text, user_data):  # llama.cpp's loader prints hundreds of lines per context
    pass


class Ceiling:
    """B forks of a prompt decoded in lockstep: nothing but llama_decode."""

    def __init__(self, path: str, n_ctx: int, n_threads: int, n_gpu_layers: int):
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        self.model = llama_cpp.llama_model_load_from_file(path.encode(), mparams)
        if not self.model:
            raise RuntimeError(f"llama_model_load_from_file failed for {path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_ctx, self.n_threads, self.n_gpu_layers = n_ctx, n_threads, n_gpu_layers

    def context(self, n_seq: int):
        # The engine's settings (cpp/src/llama/context.cc): one cell pool, n_batch = n_ctx,
        # flash attention off on the CPU and automatic when offloaded.
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = self.n_ctx
        cparams.n_batch = self.n_ctx
        cparams.n_ubatch = min(512, self.n_ctx)
        cparams.n_seq_max = n_seq
        cparams.n_outputs_max = max(self.n_ctx, n_seq)
        cparams.n_threads = cparams.n_threads_batch = self.n_threads
        cparams.kv_unified = True
        cparams.swa_full = True
        cparams.no_perf = True
        cparams.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO if self.n_gpu_layers
                                   else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not ctx:
            raise RuntimeError(f"llama_init_from_model failed (n_seq_max={n_seq})")
        return ctx

    def tokenize(self, text: str) -> list[int]:
        buf = (llama_cpp.llama_token * (len(text) + 8))()
        n = llama_cpp.llama_tokenize(self.vocab, text.encode(), len(text.encode()), buf, len(buf),
                                     True, False)
        if n < 0:
            raise RuntimeError(f"llama_tokenize failed ({n})")
        return list(buf[:n])

    def run(self, n_seq: int, steps: int) -> dict[str, float]:
        ctx = self.context(n_seq)
        batch = llama_cpp.llama_batch_init(max(n_seq, 512), 0, 1)
        try:
            # The engine's work for max_tokens=steps: decode the prompt, fork it, sample every
            # sequence's first token from the prompt's logits, then steps - 1 decode steps (the
            # last sampled token is never decoded). Token ids are fixed: this measures decoding.
            prompt = self.tokenize(PROMPT)
            start = time.perf_counter()
            _common.fill_batch(batch,
                               [(t, i, 0, i == len(prompt) - 1) for i, t in enumerate(prompt)])
            self._decode(ctx, batch)
            memory = llama_cpp.llama_get_memory(ctx)
            for seq in range(1, n_seq):
                llama_cpp.llama_memory_seq_cp(memory, 0, seq, -1, -1)
            token = prompt[-1]
            for step in range(steps - 1):
                pos = len(prompt) + step
                _common.fill_batch(batch, [(token, pos, seq, True) for seq in range(n_seq)])
                self._decode(ctx, batch)
                llama_cpp.llama_get_logits_ith(ctx, n_seq - 1)
            llama_cpp.llama_synchronize(ctx)
            seconds = time.perf_counter() - start
        finally:
            llama_cpp.llama_batch_free(batch)
            llama_cpp.llama_free(ctx)
        return {"tokens": n_seq * steps, "seconds": seconds,
                "tokens_per_s": n_seq * steps / seconds}

    @staticmethod
    def _decode(ctx, batch) -> None:
        rc = llama_cpp.llama_decode(ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    def close(self) -> None:
        llama_cpp.llama_model_free(self.model)


def engine_rate(engine: stars_cpp.Engine, n_seq: int, steps: int) -> dict[str, float]:
    result = engine.generate(PROMPT, mode="best_of_n", candidates=n_seq, max_tokens=steps,
                             temperature=1.0, seed=1)
    s = result.stats
    return {"tokens": s.policy_tokens_sampled, "seconds": s.seconds_policy,
            "tokens_per_s": s.policy_tokens_sampled / s.seconds_policy,
            "mean_batch": s.policy_tokens_sampled / steps}


def constant_reward(prompts: list[str], responses: list[str]) -> list[float]:
    return [0.0] * len(responses)


def cheap_reward(prompts: list[str], responses: list[str]) -> list[float]:
    """A reward that costs next to nothing but still makes STARS reject some segments."""
    return [float(sum(map(ord, r)) % 7) for r in responses]


def per_accepted_token(engine: stars_cpp.Engine, mode: str, max_tokens: int) -> float:
    """Wall ms per accepted token of one request (STARS: N = 4, fixed width)."""
    start = time.perf_counter()
    result = engine.generate(PROMPT, mode=mode, candidates=4, width="fixed",
                             max_tokens=max_tokens, temperature=1.0, seed=2)
    return 1000 * (time.perf_counter() - start) / max(1, result.stats.tokens_accepted)


def plot(rows: list[dict], title: str, path: Path) -> None:
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sizes = [r["batch"] for r in rows]
    ax.plot(sizes, [r["ceiling_tokens_per_s"] for r in rows], "o-", label="llama_decode ceiling")
    for sampling, marker in (("host", "s-"), ("backend", "^-")):
        key = f"engine_{sampling}_tokens_per_s"
        if key in rows[0]:
            ax.plot(sizes, [r[key] for r in rows], marker, label=f"engine, {sampling} sampling")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("sequences per decode step (batch)")
    ax.set_ylabel("policy tokens / s")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batches 1, 4, 16; 16 steps")
    parser.add_argument("--model", default=None, help="GGUF (default: packaged SmolLM2)")
    parser.add_argument("--n-gpu-layers", type=int, default=0)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs")
    parser.add_argument("--name", default=None, help="results file stem")
    parser.add_argument("--out-dir", type=Path, default=_common.RESULTS)
    parser.add_argument("--samplings", default="host,backend",
                        help="comma-separated Engine(sampling=) values to run")
    args = parser.parse_args()
    samplings = args.samplings.split(",")
    for sampling in samplings:
        if sampling not in ("host", "backend"):
            parser.error(f"--samplings takes host and backend, got {sampling!r}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")

    path = args.model or str(smollm2_path())
    sizes = [1, 4, 16] if args.quick else BATCH_SIZES
    steps = args.steps or (16 if args.quick else 48)
    n_threads = args.n_threads or _common.os.cpu_count()
    # Every sequence's cells live in one pool: the prompt plus steps cells per sequence.
    n_ctx = 1024 + max(sizes) * steps
    llama_cpp.llama_log_set(_quiet, ctypes.c_void_p())

    ceiling = Ceiling(path, n_ctx, n_threads, args.n_gpu_layers)
    engines = {sampling: stars_cpp.Engine(path, constant_reward, n_ctx=n_ctx,
                                          n_threads=n_threads, n_gpu_layers=args.n_gpu_layers,
                                          sampling=sampling)
               for sampling in samplings}
    ceiling.run(1, 4)  # warm the weights' pages and the backend
    for engine in engines.values():
        engine_rate(engine, 1, 4)
    rows = []
    for n_seq in sizes:
        # Alternate them, several times: this shared 2-core VM drifts by 10-20% between runs.
        raw, ours = [], {sampling: [] for sampling in engines}
        for _ in range(args.repeats):
            raw.append(ceiling.run(n_seq, steps))
            for sampling, engine in engines.items():
                ours[sampling].append(engine_rate(engine, n_seq, steps))
        ceiling_tps = float(np.median([r["tokens_per_s"] for r in raw]))
        row = {"batch": n_seq, "ceiling_tokens_per_s": ceiling_tps}
        for sampling, runs in ours.items():
            tps = float(np.median([r["tokens_per_s"] for r in runs]))
            row[f"engine_{sampling}_tokens_per_s"] = tps
            row[f"efficiency_{sampling}"] = tps / ceiling_tps
        row["ceiling_runs"] = [r["tokens_per_s"] for r in raw]
        for sampling, runs in ours.items():
            row[f"engine_{sampling}_runs"] = [r["tokens_per_s"] for r in runs]
        rows.append(row)
        shares = ", ".join(f"{s} {row[f'efficiency_{s}']:.0%}" for s in ours)
        print(f"batch {n_seq:3d}: ceiling {ceiling_tps:8.1f} tok/s; engine {shares}", flush=True)
    # STARS (N = 4, cheap reward) against plain, per accepted token, on each sampling path.
    stars_rows = []
    for sampling in samplings:
        engine = stars_cpp.Engine(path, cheap_reward, n_ctx=n_ctx, n_threads=n_threads,
                                  n_gpu_layers=args.n_gpu_layers, sampling=sampling)
        per_accepted_token(engine, "plain", 8)  # warm
        plain, stars = [], []
        for _ in range(args.repeats):
            plain.append(per_accepted_token(engine, "plain", steps))
            stars.append(per_accepted_token(engine, "stars", steps))
        row = {"sampling": sampling, "plain_ms_per_accepted_token": float(np.median(plain)),
               "stars_ms_per_accepted_token": float(np.median(stars))}
        row["stars_over_plain"] = row["stars_ms_per_accepted_token"] / \
            row["plain_ms_per_accepted_token"]
        stars_rows.append(row)
        print(f"{sampling}: STARS N=4 {row['stars_over_plain']:.2f}x plain per accepted token",
              flush=True)
    ceiling.close()

    name = args.name or ("decode_ceiling_quick" if args.quick else "decode_ceiling")
    machine = _common.machine()
    payload = {
        "bench": "decode_ceiling",
        "command": "python " + " ".join(sys.argv),
        "machine": machine,
        "model": Path(path).name,
        "n_gpu_layers": args.n_gpu_layers,
        "n_threads": n_threads,
        "n_ctx": n_ctx,
        "steps": steps,
        "repeats": args.repeats,
        "samplings": samplings,
        "results": rows,
        "stars_vs_plain": stars_rows,
    }
    out = _common.write_json(name, payload, args.out_dir)
    device = machine["gpu"] or f"{machine['cpu']}, {machine['cores']} cores"
    plot(rows, f"{Path(path).name} on {device} ({machine['backend']})",
         out.with_suffix(".png"))
    print(_common.markdown_table(rows, [c for c in rows[0] if not c.endswith("_runs")]))
    print(_common.markdown_table(stars_rows, list(stars_rows[0])))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
