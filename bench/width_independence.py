"""Does the round width change the text on a real model? SmolLM2 with its self-judge.

Attempt keys make the accepted text independent of how attempts are grouped into rounds, up to
decode numerics: a candidate decoded in a batch of 8 sequences may get logits that differ in the
last bits from the same candidate decoded alone (Q4_1 matmuls and attention over a different
batch), and a sampled token or a judge score can flip on that. This bench runs the same prompts
with candidates N = 1, 2, 4 and 8 (the widest a round may be; width="fixed" makes every round
that wide) and reports the fraction of prompts whose text is identical to N = 1's, and where the
first difference falls. It also runs the first prompt alone and compares it with the same prompt
among the others (batch position).

    python bench/width_independence.py [--quick]   # writes bench/results/width_independence.json

On a GPU (what holds there is measured, not promised): `--n-gpu-layers 99 --kv-layout isolated`
(bench/gpu.sh runs it with both layouts).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from quality_tasks import DATA  # noqa: E402

import stars_cpp  # noqa: E402
from stars_cpp.models import smollm2_path  # noqa: E402

WIDTHS = (1, 2, 4, 8)


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 prompts, 32 tokens")
    parser.add_argument("--model", default=None, help="policy GGUF (default: SmolLM2)")
    parser.add_argument("--n-gpu-layers", type=int, default=0)
    parser.add_argument("--kv-layout", default=None, help="isolated or shared (default: the "
                        "Engine's)")
    parser.add_argument("--name", default=None, help="results file stem")
    parser.add_argument("--out-dir", type=Path, default=_common.RESULTS)
    args = parser.parse_args()
    n_prompts, max_tokens = (4, 32) if args.quick else (12, 64)
    chats = [[{"role": "user", "content": t}]
             for t in (DATA / "instructions.txt").read_text().splitlines()[:n_prompts]]
    layout = {} if args.kv_layout is None else {"kv_layout": args.kv_layout}
    engine = stars_cpp.Engine(args.model or str(smollm2_path()), stars_cpp.JudgeReward("policy"),
                              n_ctx=8192, n_gpu_layers=args.n_gpu_layers, **layout)
    params = dict(segment_tokens=16, max_tokens=max_tokens, seed=7, width="fixed")
    runs, seconds = {}, {}
    for n in WIDTHS:
        start = time.perf_counter()
        runs[n] = engine.generate(chats, candidates=n, **params)
        seconds[n] = time.perf_counter() - start
    rows = []
    for n in WIDTHS:
        diffs = [first_difference(list(a.tokens), list(b.tokens))
                 for a, b in zip(runs[1], runs[n])]
        same = [d is None for d in diffs]
        rows.append({"candidates": n, "identical_to_N1": sum(same) / len(same),
                     "first_difference_tokens": [d for d in diffs if d is not None],
                     "policy_tokens_sampled": sum(r.stats.policy_tokens_sampled for r in runs[n]),
                     "wall_s": seconds[n]})
    # The first prompt alone, against the same prompt among the others (at N = 1 and N = 4).
    position = {}
    for n in (1, 4):
        [alone] = engine.generate(chats[:1], candidates=n, **params)
        position[f"alone_equals_batched_N{n}"] = list(alone.tokens) == list(runs[n][0].tokens)
    payload = {"bench": "width_independence", "command": "python " + " ".join(sys.argv),
               "machine": _common.machine(), "prompts": n_prompts, "params": params,
               "n_gpu_layers": args.n_gpu_layers, "kv_layout": engine.settings["kv_layout"],
               "batch_position": position, "rows": rows}
    name = args.name or ("width_independence_quick" if args.quick else "width_independence")
    out = _common.write_json(name, payload, args.out_dir)
    print(_common.markdown_table(rows, list(rows[0])))
    print(position)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
