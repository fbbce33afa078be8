"""Edge numbers: what policy plus reward costs in memory and time on a small machine.

Each configuration runs in a fresh process (so peak RSS is its own): SmolLM2-135M-Instruct
(Q4_1) as the policy, n_ctx 4096, STARS with N = 4, 16-token segments, 64 new tokens, with
- judge: JudgeReward("policy"), the self-judge sharing the policy's weights;
- classifier: ClassifierReward on the tests' tiny random BERT (no BERT-family classifier GGUF
  installs from the registry, so its reward times are not a real classifier's);
each at kv_type f16 and q8_0, in the Python package and in the native stars-cli
(`make native`; `stars-cli bench` runs the same protocol: one instruction, seed 0, 64 tokens).
Reported: peak RSS, load time (model, reward and Engine), time to the first accepted segment,
and ms per accepted token over the whole response.

    python bench/edge.py
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
PROMPT = "Give me three tips for staying focused while studying."  # as stars-cli bench
STARS_CLI = HERE.parent / "build" / "native" / "stars-cli"
TARGET_MB = 300.0  # policy plus self-judge at n_ctx 4096, N = 4


def _classifier(workdir: Path) -> Path:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from tiny_models import write_tiny_bert_classifier

    return write_tiny_bert_classifier(workdir / "tiny-bert.gguf")


def measure(reward_kind: str, kv_type: str, workdir: Path) -> dict[str, Any]:
    start = time.perf_counter()
    import stars_cpp
    from stars_cpp.models import smollm2_path

    reward = (stars_cpp.JudgeReward("policy", kv_type=kv_type) if reward_kind == "judge"
              else stars_cpp.ClassifierReward(_classifier(workdir), label=1))
    engine = stars_cpp.Engine(str(smollm2_path()), reward, n_ctx=N_CTX, kv_type=kv_type)
    load_s = time.perf_counter() - start
    began = time.perf_counter()
    seen = []
    result = engine.generate(
        [{"role": "user", "content": PROMPT}], mode="stars", candidates=CANDIDATES,
        segment_tokens=SEGMENT, max_tokens=MAX_TOKENS, seed=0,
        on_segment=lambda _, segment: seen.append(time.perf_counter()))
    total_s = time.perf_counter() - began
    return {
        "reward": reward_kind, "kv_type": kv_type, "build": "python",
        "peak_rss_mib": round(_common.peak_rss_mib(), 1),
        "load_s": round(load_s, 3),
        "first_segment_s": round(seen[0] - began, 3),
        "ms_per_accepted_token": round(1000 * total_s / max(1, len(result.tokens)), 2),
        "accepted_tokens": len(result.tokens),
    }


def measure_native(reward_kind: str, kv_type: str, workdir: Path) -> dict[str, Any]:
    from stars_cpp.models import smollm2_path

    reward = "judge:policy" if reward_kind == "judge" else f"classifier:{_classifier(workdir)}:1"
    done = subprocess.run(
        [str(STARS_CLI), "bench", "--model", str(smollm2_path()), "--reward", reward,
         "--kv-type", kv_type, "--n-ctx", str(N_CTX), "--candidates", str(CANDIDATES),
         "--segment-tokens", str(SEGMENT), "--max-tokens", str(MAX_TOKENS)],
        capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    return {"reward": reward_kind, "kv_type": kv_type, "build": "stars-cli",
            "peak_rss_mib": round(out["peak_rss_mib"], 1), "load_s": round(out["load_s"], 3),
            "first_segment_s": round(out["first_segment_s"], 3),
            "ms_per_accepted_token": round(out["ms_per_accepted_token"], 2),
            "accepted_tokens": out["accepted_tokens"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one", nargs=2, metavar=("REWARD", "KV_TYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as workdir:
            print(json.dumps(measure(*args.one, Path(workdir))))
        return
    rows = []
    for reward_kind in ("judge", "classifier"):
        for kv_type in ("f16", "q8_0"):
            # A fresh process each, outside the source tree (so the installed package loads).
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--one", reward_kind, kv_type],
                capture_output=True, text=True, cwd=tempfile.gettempdir(), check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
            if STARS_CLI.is_file():
                with tempfile.TemporaryDirectory() as workdir:
                    rows.append(measure_native(reward_kind, kv_type, Path(workdir)))
                print(rows[-1], flush=True)
    judge_q8 = next(r for r in rows if r["reward"] == "judge" and r["kv_type"] == "q8_0")
    payload = {
        "machine": _common.machine(),
        "setup": {"policy": "SmolLM2-135M-Instruct Q4_1", "n_ctx": N_CTX,
                  "candidates": CANDIDATES, "segment_tokens": SEGMENT,
                  "max_tokens": MAX_TOKENS, "prompt": PROMPT, "seed": 0},
        "target_mib": TARGET_MB,
        "self_judge_q8_0_meets_target": judge_q8["peak_rss_mib"] <= TARGET_MB,
        "stars_cli": "measured" if STARS_CLI.is_file() else "not built (make native): not measured",
        "rows": rows,
    }
    out = _common.write_json("edge", payload)
    print(_common.markdown_table(rows, list(rows[0])))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
