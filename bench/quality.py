"""Alignment quality against compute: plain sampling, best-of-N and STARS on two tasks.

Each task has a reward the methods optimise and a held-out scorer they never see:

- sentiment: Gemma-3-270M continues 50 review openings (bench/data/review_openings.txt);
  reward = VADER compound of the continuation (a Python callable); held out = AFINN-165, a
  different lexicon without VADER's rules, summed over the continuation.
- helpfulness: SmolLM2-135M-Instruct answers 50 instructions (bench/data/instructions.txt);
  reward = SmolLM2 judging itself (JudgeReward("policy")); held out = Gemma-3-270M asked a
  different question.

Every method runs in its own process (peak resident memory is per method) on the whole batch
of prompts. STARS runs at the package's defaults (threshold="auto", beta="auto", soft) unless a
method says otherwise: no threshold is tuned per task.

    python bench/quality.py [--quick] [--sweep] [--task sentiment|helpfulness] [--prompts N]

--sweep runs the frontier that picks the defaults: best-of-N for N = 1, 2, 4, 8, 16 against
STARS over target_attempts, soft and hard, plus the judge's question_last layout on the
helpfulness task; it writes quality_sweep.json and .png (held-out score against policy tokens
and against wall time). --task runs only that task (repeatable) and keeps the other tasks' last
results in the JSON; each task records its own command, machine and date.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
HELD_OUT_QUESTION = "Does the response answer the request correctly and clearly?"

TASKS: dict[str, dict[str, Any]] = {
    "sentiment": {
        "policy": "gemma3_270m",
        "reward": "vader",
        "held_out": "AFINN-165 lexicon score of the continuation",
        "prompts": "review_openings.txt",
        "chat": False,
        "params": {"max_tokens": 32, "stop": ["\n"]},
    },
    "helpfulness": {
        "policy": "smollm2",
        "reward": "judge:policy",
        "held_out": f"Gemma-3-270M judge: {HELD_OUT_QUESTION!r}",
        "prompts": "instructions.txt",
        "chat": True,
        "params": {"max_tokens": 32},
    },
}


SWEEP_TARGETS = (1.5, 2.0, 3.0, 4.0, 6.0)


def methods(quick: bool, sweep: bool = False, task: str = "") -> list[dict[str, Any]]:
    if sweep:
        out: list[dict[str, Any]] = [{"name": "plain", "mode": "plain"}]
        out += [{"name": f"best_of_{n}", "mode": "best_of_n", "candidates": n}
                for n in (1, 2, 4, 8, 16)]
        out += [{"name": f"stars_{acceptance}_s{target:g}", "mode": "stars",
                 "acceptance": acceptance, "target_attempts": target}
                for acceptance in ("soft", "hard") for target in SWEEP_TARGETS]
        if task == "helpfulness":
            out += [{"name": "stars_soft_s3_question_last", "mode": "stars",
                     "target_attempts": 3.0, "layout": "question_last"}]
        return out
    if quick:
        return [{"name": "plain", "mode": "plain"},
                {"name": "best_of_4", "mode": "best_of_n", "candidates": 4},
                {"name": "stars_K16_N4", "mode": "stars", "segment_tokens": 16, "candidates": 4}]
    out: list[dict[str, Any]] = [{"name": "plain", "mode": "plain"}]
    out += [{"name": f"best_of_{n}", "mode": "best_of_n", "candidates": n} for n in (2, 4, 8, 16)]
    out += [{"name": f"stars_K{k}_N{n}", "mode": "stars", "segment_tokens": k, "candidates": n}
            for n in (1, 4) for k in (8, 16, 32)]
    return out


def vader(prompts: list[str], responses: list[str]) -> list[float]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = vader.__dict__.setdefault("analyzer", SentimentIntensityAnalyzer())
    return [analyzer.polarity_scores(r)["compound"] for r in responses]


def model_path(name: str) -> str:
    from stars_cpp import models

    return str(models.smollm2_path() if name == "smollm2" else models.gemma3_270m_path())


def load_prompts(task: dict[str, Any], n: int) -> list[Any]:
    lines = (DATA / task["prompts"]).read_text().splitlines()[:n]
    return [[{"role": "user", "content": t}] for t in lines] if task["chat"] else lines


# --- worker: one method on the whole batch, in its own process -------------------------------

def run_method(spec: dict[str, Any]) -> dict[str, Any]:
    import stars_cpp

    task = TASKS[spec["task"]]
    method = dict(spec["method"])
    name, mode = method.pop("name"), method.pop("mode")
    layout = method.pop("layout", "question_first")
    reward = (vader if task["reward"] == "vader"
              else stars_cpp.JudgeReward("policy", layout=layout))
    engine = stars_cpp.Engine(model_path(task["policy"]), reward, n_ctx=4096)
    prompts = load_prompts(task, spec["n_prompts"])
    params = {**task["params"], **method, "seed": 1}
    first: dict[int, float] = {}
    start = time.perf_counter()
    results = engine.generate(prompts, mode=mode, **params,
                              on_segment=lambda i, _s: first.setdefault(i, time.perf_counter()))
    wall = time.perf_counter() - start
    totals = {f: sum(getattr(r.stats, f) for r in results)
              for f in ("policy_tokens_sampled", "tokens_accepted", "reward_tokens_decoded",
                        "reward_rows", "reward_calls")}
    segments = [s for r in results for s in r.segments]
    return {
        "name": name,
        "mode": mode,
        "params": {k: v for k, v in params.items() if k != "stop"},
        "texts": [r.text for r in results],
        "rewards": [r.reward for r in results],
        "wall_s": wall,
        "time_to_first_segment_s": float(np.mean([first[i] - start for i in first])),
        "peak_rss_mib": _common.peak_rss_mib(),
        "fallbacks": sum(s.fallback for s in segments),
        "attempts_per_segment": float(np.mean([s.attempts for s in segments])),
        **totals,
    }


def spawn(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{spec['method']['name']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- parent: held-out scoring, tables, plots ---------------------------------------------------

class HeldOut:
    def __init__(self, task_name: str, prompts: list[Any]):
        self.task_name = task_name
        self.users = [p[0]["content"] if isinstance(p, list) else p for p in prompts]
        if task_name == "sentiment":
            from afinn import Afinn

            self.afinn = Afinn()
        else:
            import stars_cpp

            self.judge = stars_cpp.JudgeReward(model_path("gemma3_270m"),
                                               question=HELD_OUT_QUESTION)

    def __call__(self, texts: list[str]) -> list[float]:
        if self.task_name == "sentiment":
            return [float(self.afinn.score(t)) for t in texts]
        return list(self.judge(self.users, texts))


def run_task(task_name: str, n_prompts: int, quick: bool, sweep: bool) -> dict[str, Any]:
    task = TASKS[task_name]
    prompts = load_prompts(task, n_prompts)
    held_out = HeldOut(task_name, prompts)
    rows: list[dict[str, Any]] = []
    for method in methods(quick, sweep, task_name):
        spec = {"task": task_name, "n_prompts": n_prompts, "method": method}
        row = spawn(spec)
        row["held_out"] = held_out(row["texts"])
        rows.append(row)
        print(f"  {task_name:11s} {row['name']:13s} reward {np.mean(row['rewards']):7.3f} "
              f"held-out {np.mean(row['held_out']):7.3f} tokens {row['policy_tokens_sampled']:6d}"
              f" wall {row['wall_s']:6.1f}s", flush=True)
    plain = np.array(rows[0]["held_out"])
    summary = []
    for row in rows:
        mine = np.array(row["held_out"])
        summary.append({
            "method": row["name"],
            "mean_reward": float(np.mean(row["rewards"])),
            "held_out_mean": float(np.mean(mine)),
            "win_rate_vs_plain": float(np.mean((mine > plain) + 0.5 * (mine == plain))),
            "policy_tokens_sampled": row["policy_tokens_sampled"],
            "reward_tokens_decoded": row["reward_tokens_decoded"],
            "reward_rows": row["reward_rows"],
            "wall_s": row["wall_s"],
            "ms_per_accepted_token": 1e3 * row["wall_s"] / max(1, row["tokens_accepted"]),
            "attempts_per_segment": row["attempts_per_segment"],
            "time_to_first_segment_s": row["time_to_first_segment_s"],
            "peak_rss_mib": row["peak_rss_mib"],
        })
    return {"task": task_name, "n_prompts": n_prompts,
            "setup": {k: v for k, v in task.items() if k != "chat"},
            "summary": summary, "runs": rows}


def group(name: str) -> str:
    """The curve a method belongs to in the plots: its name less its swept value."""
    if name.startswith("best_of_"):
        return "best-of-N"
    for acceptance in ("soft", "hard"):
        if name.startswith(f"stars_{acceptance}_s") and name.count("_") == 2:
            return f"STARS {acceptance} (target_attempts)"
    if name.startswith("stars_K"):
        return f"STARS {name.rsplit('_', 1)[1].replace('N', 'N=')} (K)"
    return name


def plot(tasks: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = _common.pyplot()
    axes_x = [("policy_tokens_sampled", "policy tokens sampled (all prompts)"),
              ("wall_s", "wall time (s, all prompts)")]
    fig, axes = plt.subplots(len(axes_x), len(tasks), figsize=(6.2 * len(tasks), 8.4),
                             squeeze=False)
    for column, task in enumerate(tasks):
        for row, (key, label) in enumerate(axes_x):
            ax = axes[row][column]
            curves: dict[str, list[tuple[float, float, str]]] = {}
            for s in task["summary"]:
                curves.setdefault(group(s["method"]), []).append(
                    (s[key], s["held_out_mean"], s["method"]))
            for name, points in curves.items():
                points.sort()
                style = "k*" if name == "plain" else ("o-" if len(points) > 1 else "s")
                ax.plot([p[0] for p in points], [p[1] for p in points], style, label=name,
                        markersize=10 if name == "plain" else 5)
                for x, y, n in points:
                    short = n.replace("best_of_", "N=").replace("stars_", "")
                    ax.annotate(short, (x, y), fontsize=6, xytext=(3, 3),
                                textcoords="offset points")
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("held-out score (mean)")
            ax.set_title(f"{task['task']}: {task['setup']['held_out']}", fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 prompts, 3 methods")
    parser.add_argument("--sweep", action="store_true",
                        help="the defaults' frontier: best-of-N and STARS over target_attempts")
    parser.add_argument("--task", choices=sorted(TASKS), action="append")
    parser.add_argument("--prompts", type=int, default=None, help="prompts per task (max 50)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_method(json.loads(args.worker))))
        return

    n_prompts = args.prompts or (6 if args.quick else 50)
    name = "quality_sweep" if args.sweep else ("quality_quick" if args.quick else "quality")
    machine = _common.machine()
    command = "python " + " ".join(sys.argv)
    tasks = []
    for task_name in args.task or sorted(TASKS):
        start = time.perf_counter()
        task = run_task(task_name, n_prompts, args.quick, args.sweep)
        tasks.append({**task, "command": command, "machine": machine,
                      "seconds": time.perf_counter() - start})
    # A run of some tasks replaces those and keeps the others' last results.
    previous = _common.RESULTS / f"{name}.json"
    if args.task and previous.exists():
        kept = [t for t in json.loads(previous.read_text()).get("tasks", [])
                if t["task"] not in args.task and "machine" in t]
        tasks = sorted(kept + tasks, key=lambda t: t["task"])
    payload = {"bench": "quality", "command": command, "machine": machine, "tasks": tasks}
    out = _common.write_json(name, payload)
    plot(tasks, out.with_suffix(".png"),
         f"held-out score vs compute, {n_prompts} prompts per task, {machine['cpu']}")
    for task in tasks:
        print(f"\n### {task['task']} ({task['n_prompts']} prompts, {task['seconds']:.0f} s)\n")
        print(_common.markdown_table(task["summary"], list(task["summary"][0])))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
