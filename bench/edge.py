"""Edge numbers: what policy plus reward costs in memory and time on a small machine.

Each configuration runs in a fresh process (so peak RSS is its own): SmolLM2-135M-Instruct
(Q4_1) as the policy, n_ctx 4096, STARS with N = 4, 16-token segments, 64 new tokens, with
- judge: JudgeReward("policy"), the self-judge sharing the policy's weights;
- classifier: ClassifierReward on the tests' tiny random BERT (no BERT-family classifier GGUF
  installs from the registry, so its reward times are not a real classifier's);
each at kv_type f16 and q8_0. Reported: peak RSS, load time (Engine and reward), time to the
first accepted segment, and ms per accepted token over the whole response.

The native stars-cli is not built yet, so only the Python package is measured.

    python bench/edge.py [--prompts N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common  # noqa: E402

N_CTX, CANDIDATES, SEGMENT, MAX_TOKENS = 4096, 4, 16, 64
PROMPTS = [
    "Give me three tips for staying focused while studying.",
    "Explain why the sky is blue in two sentences.",
    "Write a short, friendly note to a neighbour about a lost cat.",
]
TARGET_MB = 300.0  # policy plus self-judge at n_ctx 4096, N = 4


def measure(reward_kind: str, kv_type: str, n_prompts: int, workdir: Path) -> dict[str, Any]:
    start = time.perf_counter()
    import stars_cpp
    from stars_cpp.models import smollm2_path

    if reward_kind == "judge":
        reward = stars_cpp.JudgeReward("policy", kv_type=kv_type)
    else:
        sys.path.insert(0, str(HERE.parent / "tests"))
        from tiny_models import write_tiny_bert_classifier

        reward = stars_cpp.ClassifierReward(
            write_tiny_bert_classifier(workdir / "tiny-bert.gguf"), label=1)
    engine = stars_cpp.Engine(str(smollm2_path()), reward, n_ctx=N_CTX, kv_type=kv_type)
    load_s = time.perf_counter() - start
    first, total_s, tokens, rewards = [], 0.0, 0, []
    for i, prompt in enumerate(PROMPTS[:n_prompts]):
        began = time.perf_counter()
        seen = []
        result = engine.generate(
            [{"role": "user", "content": prompt}], mode="stars", candidates=CANDIDATES,
            segment_tokens=SEGMENT, max_tokens=MAX_TOKENS, seed=i,
            on_segment=lambda _, segment, seen=seen: seen.append(time.perf_counter()))
        total_s += time.perf_counter() - began
        first.append(seen[0] - began if seen else float("nan"))
        tokens += len(result.tokens)
        rewards.append(result.reward)
    return {
        "reward": reward_kind, "kv_type": kv_type, "build": "python",
        "peak_rss_mib": round(_common.peak_rss_mib(), 1),
        "load_s": round(load_s, 3),
        "first_segment_s": round(sum(first) / len(first), 3),
        "ms_per_accepted_token": round(1000 * total_s / max(1, tokens), 2),
        "accepted_tokens": tokens,
        "mean_reward": round(sum(r for r in rewards if r is not None) / len(rewards), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=len(PROMPTS))
    parser.add_argument("--one", nargs=2, metavar=("REWARD", "KV_TYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as workdir:
            print(json.dumps(measure(*args.one, args.prompts, Path(workdir))))
        return
    rows = []
    for reward_kind in ("judge", "classifier"):
        for kv_type in ("f16", "q8_0"):
            # A fresh process each, outside the source tree (so the installed package loads).
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--one", reward_kind, kv_type,
                 "--prompts", str(args.prompts)],
                capture_output=True, text=True, cwd=tempfile.gettempdir(), check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    judge_q8 = next(r for r in rows if r["reward"] == "judge" and r["kv_type"] == "q8_0")
    payload = {
        "machine": _common.machine(),
        "setup": {"policy": "SmolLM2-135M-Instruct Q4_1", "n_ctx": N_CTX,
                  "candidates": CANDIDATES, "segment_tokens": SEGMENT,
                  "max_tokens": MAX_TOKENS, "prompts": args.prompts},
        "target_mib": TARGET_MB,
        "self_judge_q8_0_meets_target": judge_q8["peak_rss_mib"] <= TARGET_MB,
        "stars_cli": "not built yet: not measured",
        "rows": rows,
    }
    out = _common.write_json("edge", payload)
    print(_common.markdown_table(rows, list(rows[0])))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
