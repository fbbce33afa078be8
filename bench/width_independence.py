"""Does the round width change the text on a real model? SmolLM2 with its self-judge.

Attempt keys make the accepted text independent of how attempts are grouped into rounds, up to
decode numerics: a candidate decoded in a batch of 8 sequences may get logits that differ in the
last bits from the same candidate decoded alone (Q4_1 matmuls and attention over a different
batch), and a sampled token or a judge score can flip on that. This bench runs the same prompts
with candidates N = 1, 2, 4 and 8 (the widest a round may be; width="fixed" makes every round
that wide) and reports the fraction of prompts whose text is identical to N = 1's, and where the
first difference falls.

    python bench/width_independence.py [--quick]   # writes bench/results/width_independence.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from quality import DATA  # noqa: E402

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
    args = parser.parse_args()
    n_prompts, max_tokens = (4, 32) if args.quick else (12, 64)
    chats = [[{"role": "user", "content": t}]
             for t in (DATA / "instructions.txt").read_text().splitlines()[:n_prompts]]
    engine = stars_cpp.Engine(str(smollm2_path()), stars_cpp.JudgeReward("policy"), n_ctx=8192)
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
    payload = {"bench": "width_independence", "command": "python " + " ".join(sys.argv),
               "machine": _common.machine(), "prompts": n_prompts, "params": params,
               "rows": rows}
    out = _common.write_json("width_independence_quick" if args.quick else "width_independence",
                             payload)
    print(_common.markdown_table(rows, list(rows[0])))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
