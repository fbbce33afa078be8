"""The judge's two layouts compared: where the question stands, what it costs, how it ranks.

`JudgeReward(layout="question_first")` asks the question before the exchange, so a candidate
costs its segment plus the chat template's closing tokens; `"question_last"` asks it after the
response, so every candidate also decodes the whole question. This bench scores 200
(instruction, response) rows, SmolLM2-135M-Instruct answering 50 instructions 4 times, with
SmolLM2 judging itself under each layout, and with the held-out Gemma-3-270M judge of
bench/quality.py. It reports the Spearman correlation of the two layouts, each layout's
correlation with the held-out judge, the tokens each decodes per candidate and the scoring
time. STARS's held-out quality under each layout is in quality.py --sweep (helpfulness).

    python bench/judge_layout.py [--quick]     # writes bench/results/judge_layout[_quick].json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from quality_tasks import DATA  # noqa: E402

import stars_cpp  # noqa: E402
from stars_cpp.models import gemma3_270m_path, smollm2_path  # noqa: E402

LAYOUTS = ("question_first", "question_last")

# Asked of Gemma, a judge the policy never sees.
HELD_OUT_QUESTION = "Does the response answer the request correctly and clearly?"


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho: Pearson's correlation of the ranks (average ranks for ties)."""
    def ranks(x: list[float]) -> np.ndarray:
        x = np.asarray(x)
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for value in np.unique(x):  # ties share their mean rank
            tied = x == value
            r[tied] = r[tied].mean()
        return r

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 instructions x 2 responses")
    args = parser.parse_args()
    n_prompts, per_prompt = (10, 2) if args.quick else (50, 4)
    instructions = (DATA / "instructions.txt").read_text().splitlines()[:n_prompts]
    policy = str(smollm2_path())

    engine = stars_cpp.Engine(policy, n_ctx=8192)
    chats = [[{"role": "user", "content": t}] for t in instructions for _ in range(per_prompt)]
    responses = [r.text for r in engine.generate(chats, mode="plain", max_tokens=32, seed=3)]
    users = [c[0]["content"] for c in chats]

    scores, rows = {}, []
    for layout in LAYOUTS:
        judge = stars_cpp.JudgeReward(policy, layout=layout, n_ctx=8192)
        start = time.perf_counter()
        scores[layout] = list(judge(users, responses))
        rows.append({"layout": layout, "suffix_tokens_per_candidate": judge.native.n_suffix_tokens,
                     "scoring_s": time.perf_counter() - start})
    held_out = stars_cpp.JudgeReward(str(gemma3_270m_path()), question=HELD_OUT_QUESTION,
                                     n_ctx=8192)
    scores["held_out"] = list(held_out(users, responses))
    for row in rows:
        row["spearman_with_held_out"] = spearman(scores[row["layout"]], scores["held_out"])
        row["reward_std"] = float(np.std(scores[row["layout"]]))
    payload = {
        "bench": "judge_layout",
        "command": "python " + " ".join(sys.argv),
        "machine": _common.machine(),
        "rows": len(responses),
        "spearman_first_vs_last": spearman(scores["question_first"], scores["question_last"]),
        "layouts": rows,
        "scores": scores,
    }
    out = _common.write_json("judge_layout_quick" if args.quick else "judge_layout", payload)
    print(f"{len(responses)} rows; Spearman(question_first, question_last) = "
          f"{payload['spearman_first_vs_last']:.3f}\n")
    print(_common.markdown_table(rows, list(rows[0])))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
