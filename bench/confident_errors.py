"""Do entropy-ended segments miss confident errors? A claim of STARS v2 against CARDS, measured
on the texts of the quality sweep (bench/quality.py --sweep, quality_sweep.json).

    python bench/confident_errors.py [--task sentiment_smollm2]

An error is what the task's reward counts against a text: a negative AFINN-165 word on the
sentiment tasks, a stray line or a fourth bullet on bullets. It is confident when the policy was
sure of it: the entropy of the distribution its first token was drawn from (the policy's raw
logits, as CARDS reads them) is below CARDS's threshold, so CARDS would not have ended a segment
before it. Each text is decoded again under SmolLM2 with its prompt, as the engine rendered it.

If CARDS misses confident errors, its texts keep about plain's rate of confident errors while
STARS, which scores fixed-length segments, cuts them like the rest. Writes
confident_errors.json: errors per 100 response tokens, and how many were confident, per method.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import quality_tasks  # noqa: E402

THRESHOLDS = (2.0, 3.0, 4.0)


def entropies(llm: Any, tokens: list[int], start: int) -> np.ndarray:
    """The entropy (nats) of the distribution each of tokens[start:] was drawn from."""
    log_p = _common.log_softmax_rows(llm, tokens, start)
    return -(np.exp(log_p) * log_p).sum(axis=1)


def negative_words(text: str) -> list[int]:
    """Offsets of the words AFINN-165 scores below zero (the sentiment tasks' errors)."""
    return [m.start() for m in re.finditer(r"[A-Za-z']+", text)
            if quality_tasks.afinn_score([], [m.group()])[0] < 0]


def structure_errors(text: str) -> list[int]:
    """Offsets of the lines the bullets task counts against a text: a line that is not a bullet,
    or a bullet past the third."""
    out, bullets, at = [], 0, 0
    for line in text.split("\n"):
        if line.strip():
            bullet = quality_tasks.bullet_structure(line)[0] == 1
            bullets += bullet
            if not bullet or bullets > 3:
                out.append(at + len(line) - len(line.lstrip()))
        at += len(line) + 1
    return out


ERRORS = {"sentiment_smollm2": negative_words, "sentiment_smollm2_long": negative_words,
          "bullets": structure_errors}
METHODS = ("plain", "best_of_4", "best_of_16", "stars", "stars_target_attempts=4.0", "cards",
           "cards_entropy_threshold=3.0", "cards_entropy_threshold=4.0")


def token_at(pieces: list[str], offsets: list[int]) -> list[int]:
    """The index of the token each character offset falls in."""
    ends = np.cumsum([len(p) for p in pieces])
    return [int(np.searchsorted(ends, o, side="right")) for o in offsets]


def measure(task_json: dict[str, Any], model: Any, llm: Any) -> list[dict[str, Any]]:
    task = quality_tasks.make_tasks(task_json["n_prompts"])[task_json["task"]]
    find = ERRORS[task.name]
    from stars_cpp import _core

    prompts = [_core.prompt_tokens(model, "", [("user", u)]) for u in task.users()]
    rows = []
    for run in task_json["runs"]:
        if run["name"] not in METHODS:
            continue
        confident = {t: 0 for t in THRESHOLDS}
        errors = tokens = 0
        for prompt, text in zip(prompts, run["texts"]):
            response = model.tokenize(text, add_special=False, parse_special=False)
            if not response:
                continue
            pieces = [model.detokenize([t]) for t in response]
            at = [i for i in token_at(pieces, find("".join(pieces))) if i < len(response)]
            tokens += len(response)
            if not at:
                continue
            h = entropies(llm, prompt + response, len(prompt))
            errors += len(at)
            for t in THRESHOLDS:
                confident[t] += sum(bool(h[i] < t) for i in at)
        per = 100.0 / max(1, tokens)
        rows.append({"method": run["name"], "tokens": tokens, "errors": errors,
                     "errors_per_100_tokens": errors * per,
                     **{f"confident_below_{t:g}": confident[t] for t in THRESHOLDS},
                     **{f"confident_per_100_tokens_below_{t:g}": confident[t] * per
                        for t in THRESHOLDS},
                     "tokens_per_segment": run["tokens_per_segment"]})
        print(f"  {task.name} {run['name']:28s} errors {errors:4d} ({errors * per:5.2f} per 100 "
              f"tokens), confident below 2/3/4 nats: "
              + " / ".join(str(confident[t]) for t in THRESHOLDS), flush=True)
    plain = next(r for r in rows if r["method"] == "plain")
    for r in rows:
        r["errors_vs_plain"] = r["errors_per_100_tokens"] / max(
            1e-9, plain["errors_per_100_tokens"])
        for t in THRESHOLDS:
            key = f"confident_per_100_tokens_below_{t:g}"
            r[f"confident_vs_plain_below_{t:g}"] = r[key] / max(1e-9, plain[key])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", choices=sorted(ERRORS),
                        help="default: sentiment_smollm2 and bullets")
    args = parser.parse_args()
    import llama_cpp

    from stars_cpp import models
    from stars_cpp.engine import load_model

    sweep = json.loads((_common.RESULTS / "quality_sweep.json").read_text())
    path = str(models.smollm2_path())
    model = load_model(path)
    llm = llama_cpp.Llama(path, n_ctx=1024, logits_all=True, verbose=False)
    tasks = []
    for name in args.task or ["sentiment_smollm2", "bullets"]:
        task_json = next(t for t in sweep["tasks"] if t["task"] == name)
        rows = measure(task_json, model, llm)
        tasks.append({"task": name, "n_prompts": task_json["n_prompts"], "rows": rows})
        print(_common.markdown_table(rows, ["method", "errors", "errors_per_100_tokens",
                                            "confident_below_2", "confident_below_3",
                                            "errors_vs_plain", "confident_vs_plain_below_3",
                                            "tokens_per_segment"]))
    out = _common.write_json("confident_errors", {
        "bench": "confident_errors", "command": "python " + " ".join(sys.argv),
        "machine": _common.machine(), "thresholds": list(THRESHOLDS),
        "errors": {"sentiment": "a negative AFINN-165 word",
                   "bullets": "a line that is not a bullet, or a bullet past the third"},
        "confident": "the entropy (nats, raw logits) before the error's first token is below "
                     "the threshold", "tasks": tasks})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
