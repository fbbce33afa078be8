"""What one round of reward scoring costs as the accepted prefix grows.

One round = 4 candidates of 16 new tokens after a prefix (prompt + accepted response) of P
policy tokens, scored through each reward's batched protocol (begin, commit the prefix,
score). KV-cached rewards decode only each candidate's new tokens plus their template tail;
a re-encoding reward reads the whole text again every round.

- causal: CausalReward on SmolLM2-135M's backbone (Q4_1) with a random head in its metadata;
- causal_rescore: the same model scoring every row from scratch (what a re-encoding causal
  classifier does), for a same-size comparison;
- judge: JudgeReward on SmolLM2-135M;
- classifier: ClassifierReward on the tiny random BERT of the tests (no BERT-family
  classifier GGUF installs from the registry; its absolute times are not comparable).

Each reward runs in its own process, so peak resident memory is its own.

    python bench/reward_cost.py [--quick]
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

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common  # noqa: E402

PREFIXES = [64, 128, 256, 512]
N_CANDIDATES, SEGMENT = 4, 16
PROMPT = "Tell me a long story about a lighthouse keeper."
STORY = (
    "The lighthouse stood on a rock at the edge of the bay, and every evening the keeper "
    "climbed its hundred and twelve steps to light the lamp. He had done this for thirty "
    "years, through storms that shook the glass and calm nights when the sea lay flat as a "
    "mirror. Ships passed far out, their lights small and patient, and he liked to imagine "
    "the sailors looking back at his beam and feeling less alone. "
)
CONTINUATIONS = [" One night a small boat appeared", " The keeper's daughter had written",
                 " Fog rolled in thicker than any", " Nobody in the village remembered"]
REWARDS = ["causal", "causal_rescore", "judge", "classifier"]


def make_reward(name: str, workdir: Path):
    import stars_cpp
    from stars_cpp.models import smollm2_path

    if name in ("causal", "causal_rescore"):
        from stars_cpp._gguf_head import add_head

        path = workdir / "smollm2-random-head.gguf"
        if not path.exists():
            model = stars_cpp.Engine(str(smollm2_path())).model
            weight = np.random.default_rng(0).normal(0.0, 0.05, model.n_embd).tolist()
            add_head(str(smollm2_path()), str(path), {"weight": weight, "bias": 0.0, "row": -1})
        return stars_cpp.CausalReward(path).native
    if name == "judge":
        return stars_cpp.JudgeReward(str(smollm2_path())).native
    sys.path.insert(0, str(HERE.parent / "tests"))
    from tiny_models import write_tiny_bert_classifier

    path = write_tiny_bert_classifier(workdir / "tiny-bert.gguf")
    return stars_cpp.ClassifierReward(path, label=(1, 0))._native


def measure(name: str, prefixes: list[int], workdir: Path, repeats: int) -> dict[str, Any]:
    import stars_cpp
    from stars_cpp._core import testing
    from stars_cpp.models import smollm2_path

    policy = stars_cpp.Engine(str(smollm2_path())).model
    story = policy.tokenize(STORY * 12, add_special=False)
    segments = [policy.tokenize(c + STORY, add_special=False)[:SEGMENT] for c in CONTINUATIONS]
    reward = make_reward(name, workdir)
    rows_out = []
    for p in prefixes:
        trunk = story[:p]
        trunk_text = policy.detokenize(trunk)
        rows = [(0, trunk_text, policy.detokenize(s), trunk, s) for s in segments]
        times, per_candidate = [], 0.0
        for _ in range(repeats + 1):  # the first round warms the caches and is dropped
            testing.reward_begin(reward, 0, PROMPT)
            start = time.perf_counter()
            if name == "causal_rescore":
                texts = [trunk_text + r[2] for r in rows]
                reward.score_texts([PROMPT] * len(rows), texts)
                seconds = time.perf_counter() - start
                decoded = sum(len(reward.input_tokens(PROMPT, t)) for t in texts)
            else:
                testing.reward_commit(reward, 0, trunk, trunk_text)
                before = testing.reward_tokens_decoded(reward, 0)
                start = time.perf_counter()
                testing.reward_score(reward, rows)
                seconds = time.perf_counter() - start
                decoded = testing.reward_tokens_decoded(reward, 0) - before
            times.append(seconds)
            per_candidate = decoded / len(rows)
        rows_out.append({"reward": name, "prefix_tokens": p,
                         "round_ms": 1000 * float(np.median(times[1:])),
                         "ms_per_candidate": 1000 * float(np.median(times[1:])) / len(rows),
                         "tokens_decoded_per_candidate": per_candidate})
        print(f"  {name:15s} prefix {p:4d}: {rows_out[-1]['round_ms']:8.1f} ms/round, "
              f"{per_candidate:6.1f} tokens decoded per candidate", file=sys.stderr, flush=True)
    return {"reward": name, "peak_rss_mib": _common.peak_rss_mib(), "rows": rows_out}


def plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = _common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for result in results:
        xs = [r["prefix_tokens"] for r in result["rows"]]
        axes[0].plot(xs, [r["ms_per_candidate"] for r in result["rows"]], "o-",
                     label=result["reward"])
        axes[1].plot(xs, [r["tokens_decoded_per_candidate"] for r in result["rows"]], "o-",
                     label=result["reward"])
    axes[0].set_ylabel("ms per candidate (one round of 4)")
    axes[1].set_ylabel("reward tokens decoded per candidate")
    for ax in axes:
        ax.set_xlabel("prefix tokens (prompt + accepted response)")
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="prefixes 64 and 512, 1 repeat")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    prefixes = [64, 512] if args.quick else PREFIXES
    repeats = 1 if args.quick else 3
    if args.worker:
        name, workdir = json.loads(args.worker)
        print(json.dumps(measure(name, prefixes, Path(workdir), repeats)))
        return
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in REWARDS:
            cmd = [sys.executable, __file__, "--worker", json.dumps([name, workdir])]
            cmd += ["--quick"] if args.quick else []
            out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    machine = _common.machine()
    payload = {"bench": "reward_cost", "command": "python " + " ".join(sys.argv),
               "machine": machine, "candidates": N_CANDIDATES, "segment_tokens": SEGMENT,
               "results": results}
    out = _common.write_json("reward_cost_quick" if args.quick else "reward_cost", payload)
    plot(results, out.with_suffix(".png"), f"one scoring round, {machine['cpu']}")
    rows = [{**r, "peak_rss_mib": res["peak_rss_mib"]} for res in results for r in res["rows"]]
    print(_common.markdown_table(rows, list(rows[0])))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
