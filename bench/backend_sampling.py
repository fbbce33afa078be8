"""Sampling in llama.cpp's graph (`Engine(sampling="backend")`) against sampling on the host, on
the CPU backend: wall ms per accepted token for plain decoding of B prompts at once and for
STARS with B candidates per round (fixed width), B = 1, 4 and 16. The two paths alternate
within each repeat, so that the VM's drift falls on both; the JSON keeps every run.

On a GPU the graph saves copying a row of logits per sequence to the host; on the CPU the logits
are already in host memory, so the graph does the host's work plus a re-reserve of the graph
when the attached chains change (about twice per STARS round). `sampling="auto"` (the default)
samples on the host unless the model is offloaded.

    python bench/backend_sampling.py [--quick] [--model PATH]  # results/backend_sampling.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from decode_ceiling import cheap_reward  # noqa: E402

import stars_cpp  # noqa: E402
from stars_cpp.models import smollm2_path  # noqa: E402

PROMPTS = ["Once upon a time, in a small village by the sea, there lived",
           "The best way to learn a new language is", "My favourite season is autumn because",
           "Here is a short story about a robot who"]
SAMPLINGS = ("host", "backend")


def ms_per_accepted(engine: stars_cpp.Engine, mode: str, width: int, max_tokens: int,
                    seed: int) -> float:
    if mode == "plain":
        prompts = [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(width)]
        params = dict(mode="plain")
    else:
        prompts = [PROMPTS[0]]
        params = dict(mode="stars", candidates=width, width="fixed", segment_tokens=8)
    start = time.perf_counter()
    results = engine.generate(prompts, max_tokens=max_tokens, temperature=1.0, seed=seed,
                              **params)
    seconds = time.perf_counter() - start
    return 1000 * seconds / max(1, sum(r.stats.tokens_accepted for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, 16 tokens")
    parser.add_argument("--model", default=None, help="GGUF (default: packaged SmolLM2)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats, max_tokens = (1, 16) if args.quick else (args.repeats, 32)
    path = args.model or str(smollm2_path())
    engines = {s: stars_cpp.Engine(path, cheap_reward, n_ctx=4096, sampling=s)
               for s in SAMPLINGS}
    for engine in engines.values():  # warm the weights' pages and the graphs
        ms_per_accepted(engine, "stars", 4, 8, seed=0)
    rows = []
    for mode in ("plain", "stars"):
        for width in (1, 4, 16):
            runs = {s: [] for s in SAMPLINGS}
            for repeat in range(repeats):
                for sampling, engine in engines.items():
                    runs[sampling].append(ms_per_accepted(engine, mode, width, max_tokens,
                                                          seed=1 + repeat))
            host, backend = (float(np.median(runs[s])) for s in SAMPLINGS)
            rows.append({"mode": mode, "sequences": width, "host_ms_per_accepted": host,
                         "backend_ms_per_accepted": backend, "backend_over_host": backend / host,
                         "host_runs": runs["host"], "backend_runs": runs["backend"]})
            print(f"{mode:5s} B={width:2d}: host {host:7.2f} ms, backend {backend:7.2f} ms "
                  f"per accepted token ({backend / host:.2f}x)", flush=True)
    payload = {"bench": "backend_sampling", "command": "python " + " ".join(sys.argv),
               "machine": _common.machine(), "model": Path(path).name, "max_tokens": max_tokens,
               "repeats": repeats, "rows": rows}
    out = _common.write_json("backend_sampling_quick" if args.quick else "backend_sampling",
                             payload)
    print(_common.markdown_table(rows, [c for c in rows[0] if not c.endswith("_runs")]))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
