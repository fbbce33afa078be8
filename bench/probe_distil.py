"""Distil a sentiment reward into a probe on SmolLM2 from prompts alone, then steer with it
(the worked example of docs/probes.md), and what it costs per accepted token against plain
decoding and against STARS with the reward it was distilled from.

    python bench/probe_distil.py [--train 32] [--test 16] [--generate 8]

1. `fit_probe` samples `--generate` plain responses for each of the first `--train` topic
   prompts, scores them with VADER (bench/quality_tasks.py), and fits a ridge probe on SmolLM2's
   last-layer hidden states (held-out Pearson r reported).
2. On the next `--test` prompts (never fitted on): plain, STARS with VADER itself (a Python
   callable), and STARS with the probe, each scored by VADER on the final text. The probe's
   candidates are read off the engine's own decodes: no second model, no decode of its own for
   capped candidates.

Writes bench/results/probe_distil.json. Wall times are this machine's at the time of the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# Passive OpenMP waits (before llama.cpp loads; workers inherit it): llama.cpp's spinning threads
# slow a decode many times over when anything else shares the cores. No result changes.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import quality_tasks  # noqa: E402


def run(engine: Any, prompts: list[str], **params: Any) -> dict[str, Any]:
    start = time.perf_counter()
    results = engine.generate(prompts, **params)
    wall = time.perf_counter() - start
    accepted = max(1, sum(r.stats.tokens_accepted for r in results))
    texts = [r.text for r in results]
    return {"texts": texts,
            "vader": float(np.mean(quality_tasks.vader_compound(prompts, texts))),
            "ms_per_accepted_token": 1e3 * wall / accepted,
            "policy_tokens_per_accepted": sum(r.stats.policy_tokens_sampled
                                              for r in results) / accepted,
            "reward_tokens_decoded": sum(r.stats.reward_tokens_decoded for r in results),
            "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=32)
    parser.add_argument("--test", type=int, default=16)
    parser.add_argument("--generate", type=int, default=8)
    args = parser.parse_args()

    import stars_cpp
    from stars_cpp.models import smollm2_path

    topics = (quality_tasks.DATA / "topics.txt").read_text().splitlines()
    prompts = [f"Write one sentence about {t}." for t in topics]
    train, test = prompts[:args.train], prompts[args.train:args.train + args.test]
    model = str(smollm2_path())
    probe_path = _common.RESULTS / "sentiment.probe.gguf"
    start = time.perf_counter()
    report = stars_cpp.fit_probe([{"prompt": p} for p in train], probe_path, model=model,
                                 generate=args.generate, score_with=quality_tasks.vader_compound,
                                 max_tokens=40, seed=0, progress=False,
                                 scored_output=_common.RESULTS / "probe_distil_scored.jsonl")
    fit_s = time.perf_counter() - start
    print(report.summary(), f"({fit_s:.0f} s)", flush=True)

    params = {"max_tokens": 40, "seed": 1}
    rows = {}
    with stars_cpp.Engine(model, quality_tasks.vader_compound, n_ctx=1024) as engine:
        rows["plain"] = run(engine, test, mode="plain", **params)
        rows["stars_vader"] = run(engine, test, mode="stars", **params)
    with stars_cpp.Engine(model, stars_cpp.ProbeReward(probe_path), n_ctx=1024) as engine:
        rows["stars_probe"] = run(engine, test, mode="stars", **params)
    plain_ms = rows["plain"]["ms_per_accepted_token"]
    summary = [{"method": name, "vader_mean": r["vader"],
                "ms_per_accepted_token": r["ms_per_accepted_token"],
                "cost_vs_plain": r["ms_per_accepted_token"] / plain_ms,
                "policy_tokens_per_accepted": r["policy_tokens_per_accepted"],
                "reward_tokens_decoded": r["reward_tokens_decoded"]}
               for name, r in rows.items()]
    payload = {"bench": "probe_distil", "command": "python " + " ".join(sys.argv),
               "machine": _common.machine(), "fit": {
                   "train_prompts": len(train), "responses_per_prompt": args.generate,
                   "rows": report.n_train + report.n_holdout,
                   "ridge": report.extra.get("ridge"),
                   "holdout_correlation": report.holdout_correlation, "seconds": fit_s},
               "test_prompts": len(test), "summary": summary, "runs": rows}
    out = _common.write_json("probe_distil", payload)
    print(_common.markdown_table(summary, list(summary[0])))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
