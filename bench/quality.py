"""Alignment quality against compute over five tasks (bench/quality_tasks.py): plain sampling,
best-of-N, STARS and CARDS, each task with a reward the methods optimise and a held-out scorer
they never see, on 48 prompts.

    python bench/quality.py [--sweep] [--throughput] [--task NAME ...] [--method NAME ...]
                            [--prompts N]

Without --sweep: plain, best-of-4 and -16, STARS and CARDS at the package's defaults.
--sweep moves one STARS setting at a time away from the defaults (segment_tokens 8 and 32,
target_attempts 2, 4 and 6, hard acceptance, alpha 1: no ramp) plus CARDS at two more entropy
thresholds. --method runs only the named methods (plain always runs: wins are counted against
it) and merges them into the kept results of each task. Defaults are then chosen by the worst
task: the cheapest setting (policy tokens per accepted token) that wins at least 0.65 against
plain on every task, or failing one, the setting whose lowest win rate is highest; over the
tasks where best-of-16 itself wins at least 0.65 (elsewhere the held-out scorer does not see
what the reward buys). It writes quality_sweep.json and .png
(held-out score against policy tokens and against wall time, per task).
The long-form tasks (128-token responses, bench/quality_tasks.py) run only when named, usually
with a few --method, for the best-of-16 target; they take no part in the choice of defaults.
--throughput compares STARS and CARDS at 1 and 12 prompts per call (ms and decode batch per
accepted token) on sentiment_smollm2: whether entropy-ended segments batch poorly (alone, it
runs no task and keeps their results).

Every method runs in its own process (peak resident memory is per method) on the whole batch
of prompts. Wall times are this machine's and move with its load; policy tokens do not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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

# One setting at a time away from the defaults: what a 2-core machine sweeps over five tasks of
# 48 prompts in about two hours.
STARS_AXES: list[tuple[str, Any]] = [
    ("segment_tokens", 8), ("segment_tokens", 32), ("target_attempts", 2.0),
    ("target_attempts", 4.0), ("target_attempts", 6.0), ("acceptance", "hard"), ("alpha", 1.0)]
CARDS_THRESHOLDS = (3.0, 4.0)


def methods(sweep: bool, task: quality_tasks.Task | None = None) -> list[dict[str, Any]]:
    """Every task's methods (more in a sweep), then the task's own (sweep only)."""
    sizes = (4, 16)
    out: list[dict[str, Any]] = [{"name": "plain", "mode": "plain"}]
    out += [{"name": f"best_of_{n}", "mode": "best_of_n", "candidates": n} for n in sizes]
    out += [{"name": "stars", "mode": "stars"}, {"name": "cards", "mode": "cards"}]
    if sweep:
        out += [quality_tasks.stars_setting(**{key: value}) for key, value in STARS_AXES]
        out += [{"name": f"cards_entropy_threshold={t}", "mode": "cards",
                 "entropy_threshold": t} for t in CARDS_THRESHOLDS]
        out += task.methods if task is not None else []
    return out


def model_path(name: str) -> str:
    from stars_cpp import models

    return str(models.smollm2_path() if name == "smollm2" else models.gemma3_270m_path())


# --- worker: one method on a batch of prompts, in its own process ------------------------------

def run_method(spec: dict[str, Any]) -> dict[str, Any]:
    import stars_cpp

    task = quality_tasks.make_tasks(spec["n_prompts"])[spec["task"]]
    method = dict(spec["method"])
    name, mode = method.pop("name"), method.pop("mode")
    engine = stars_cpp.Engine(model_path(task.policy), task.reward, n_ctx=4096)
    params = {**task.params, **method, "seed": 1}
    per_call = spec.get("per_call") or len(task.prompts)
    results: list[Any] = []
    start = time.perf_counter()
    for at in range(0, len(task.prompts), per_call):
        batch = task.prompts[at:at + per_call]
        out = engine.generate(batch, mode=mode, **params)
        results += out if isinstance(out, list) else [out]
    wall = time.perf_counter() - start
    metrics = engine.metrics()
    totals = {f: sum(getattr(r.stats, f) for r in results)
              for f in ("policy_tokens_sampled", "tokens_accepted", "reward_rows",
                        "reward_calls")}
    segments = [s for r in results for s in r.segments]
    return {
        "name": name,
        "mode": mode,
        "params": {k: v for k, v in params.items() if k != "stop"},
        "per_call": per_call,
        "texts": [r.text for r in results],
        "rewards": [r.reward for r in results],
        "wall_s": wall,
        "peak_rss_mib": _common.peak_rss_mib(),
        "segments": len(segments),
        "tokens_per_segment": totals["tokens_accepted"] / max(1, len(segments)),
        "fallbacks": sum(s.fallback for s in segments),
        "attempts_per_segment": float(np.mean([s.attempts for s in segments])),
        "decode_calls": metrics["decode_calls"],
        "decode_tokens": metrics["decode_tokens"],
        **totals,
    }


def spawn(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{spec['method']['name']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- parent: held-out scoring, selection, tables, plots ----------------------------------------

class Fluency:
    """Mean log-probability per token of a text under Gemma-3-270M (the other model)."""

    def __init__(self) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(model_path("gemma3_270m"), n_ctx=512, logits_all=True,
                                   verbose=False)

    def __call__(self, texts: list[str]) -> list[float]:
        out = []
        for text in texts:
            tokens = self.llm.tokenize(text.encode(), add_bos=True)[:256]
            if len(tokens) < 2:
                out.append(float("nan"))
                continue
            log_p = _common.log_softmax_rows(self.llm, tokens, 1)
            out.append(float(np.mean(log_p[np.arange(len(tokens) - 1), tokens[1:]])))
        return out


def summarize(row: dict[str, Any], plain: np.ndarray) -> dict[str, Any]:
    mine = np.array(row["held_out"])
    accepted = max(1, row["tokens_accepted"])
    out = {
        "method": row["name"],
        "mean_reward": float(np.mean(row["rewards"])),
        "held_out_mean": float(np.mean(mine)),
        "win_rate_vs_plain": float(np.mean((mine > plain) + 0.5 * (mine == plain))),
        "policy_tokens_sampled": row["policy_tokens_sampled"],
        "policy_tokens_per_accepted": row["policy_tokens_sampled"] / accepted,
        "ms_per_accepted_token": 1e3 * row["wall_s"] / accepted,
        "tokens_per_segment": row["tokens_per_segment"],
        "wall_s": row["wall_s"],
        "peak_rss_mib": row["peak_rss_mib"],
    }
    if "fluency" in row:
        out["fluency"] = float(np.nanmean(row["fluency"]))
    return out


def run_task(name: str, n_prompts: int, sweep: bool, fluency: Fluency | None,
             only: list[str] | None = None, kept: dict[str, Any] | None = None) -> dict[str, Any]:
    task = quality_tasks.make_tasks(n_prompts)[name]
    rows: list[dict[str, Any]] = []
    wanted = [m for m in methods(sweep, task)
              if not only or m["name"] in only or m["name"] == "plain"]
    for method in wanted:
        row = spawn({"task": name, "n_prompts": n_prompts, "method": method})
        row["held_out"] = task.held_out(row["texts"])
        if fluency is not None:
            row["fluency"] = fluency(row["texts"])
        rows.append(row)
        print(f"  {name:17s} {row['name']:28s} reward {np.mean(row['rewards']):7.3f} "
              f"held-out {np.mean(row['held_out']):7.3f} tokens {row['policy_tokens_sampled']:6d}"
              f" wall {row['wall_s']:6.1f}s", flush=True)
    # Runs of other methods kept from an earlier run of this task (same prompts, same seed).
    ran = {r["name"] for r in rows}
    rows += [r for r in (kept or {}).get("runs", []) if r["name"] not in ran]
    order = [m["name"] for m in methods(True, task)]
    rows.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
    plain = np.array(rows[0]["held_out"])
    return {"task": name, "n_prompts": len(task.prompts),
            "setup": {"policy": task.policy, "reward": task.reward_name,
                      "held_out": task.held_out_name, "params": task.params,
                      "long_form": task.long_form},
            "summary": [summarize(r, plain) for r in rows], "runs": rows}


def best_of_16_target(task: dict[str, Any]) -> dict[str, Any]:
    """Where STARS and CARDS stand against best-of-16: the cheapest of them that reaches its
    held-out score, or the best of them with its share of best-of-16's tokens."""
    rows = {r["method"]: r for r in task["summary"]}
    target = rows.get("best_of_16")
    if target is None:
        return {}
    ours = [r for r in task["summary"] if r["method"].startswith(("stars", "cards"))]
    reached = [r for r in ours if r["held_out_mean"] >= target["held_out_mean"]]
    pick = (min(reached, key=lambda r: r["policy_tokens_sampled"]) if reached
            else max(ours, key=lambda r: r["held_out_mean"]))
    return {"best_of_16_held_out": target["held_out_mean"],
            "best_of_16_tokens": target["policy_tokens_sampled"],
            "method": pick["method"], "held_out": pick["held_out_mean"],
            "token_share": pick["policy_tokens_sampled"] / target["policy_tokens_sampled"],
            "reached": bool(reached)}


# A task counts for the choice of defaults when best-of-16 wins at least this against plain.
DISCRIMINATING = 0.65
# What the defaults must win against plain on every task that counts.
TARGET_WIN = 0.65


def discriminates(task: dict[str, Any]) -> bool:
    best = next((r for r in task["summary"] if r["method"] == "best_of_16"), None)
    return best is not None and best["win_rate_vs_plain"] >= DISCRIMINATING


def choose_defaults(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every STARS and CARDS setting, the choice first: the cheapest (policy tokens per accepted
    token, on average over the tasks) of those whose worst task's win rate is at least
    TARGET_WIN; then the others by that worst win rate (ties: fewer tokens). Long-form tasks,
    which run a few methods for the best-of-16 target, take no part; nor does a task whose
    held-out scorer cannot see what the reward buys: where best-of-16, the most reward at the
    most tokens, wins less than DISCRIMINATING against plain, a win rate measures the scorers'
    disagreement."""
    tasks = [t for t in tasks if not t["setup"].get("long_form") and discriminates(t)]
    names = [r["method"] for r in tasks[0]["summary"]
             if r["method"].startswith(("stars", "cards"))
             and all(any(s["method"] == r["method"] for s in t["summary"]) for t in tasks)]
    table = []
    for name in names:
        rows = [next(r for r in t["summary"] if r["method"] == name) for t in tasks]
        wins = {t["task"]: r["win_rate_vs_plain"] for t, r in zip(tasks, rows)}
        table.append({"method": name, "worst_win_rate": min(wins.values()),
                      "worst_task": min(wins, key=wins.get),
                      "mean_win_rate": float(np.mean(list(wins.values()))),
                      "policy_tokens_per_accepted": float(np.mean(
                          [r["policy_tokens_per_accepted"] for r in rows])),
                      "ms_per_accepted_token": float(np.mean(
                          [r["ms_per_accepted_token"] for r in rows])),
                      **{f"win_{k}": v for k, v in wins.items()}})
    # First the settings that win at least TARGET_WIN on every task, cheapest first (a worst
    # task's win rates one prompt apart are within noise); then the rest by their worst task.
    for r in table:
        r["meets_target"] = r["worst_win_rate"] >= TARGET_WIN
    table.sort(key=lambda r: (not r["meets_target"],
                              r["policy_tokens_per_accepted"] if r["meets_target"] else 0.0,
                              -r["worst_win_rate"], r["policy_tokens_per_accepted"]))
    return table


def throughput(n_prompts: int) -> list[dict[str, Any]]:
    """STARS and CARDS at 1 and 12 prompts per call: entropy-ended segments end at different
    steps, so fewer candidates may share each decode."""
    out = []
    for mode in ("stars", "cards"):
        for per_call in (1, 12):
            row = spawn({"task": "sentiment_smollm2", "n_prompts": n_prompts,
                         "method": {"name": f"{mode}_x{per_call}", "mode": mode},
                         "per_call": per_call})
            accepted = max(1, row["tokens_accepted"])
            out.append({"method": mode, "prompts": n_prompts, "prompts_per_call": per_call,
                        "ms_per_accepted_token": 1e3 * row["wall_s"] / accepted,
                        "decode_batch_mean": row["decode_tokens"] / max(1, row["decode_calls"]),
                        "decode_calls_per_accepted": row["decode_calls"] / accepted,
                        "policy_tokens_per_accepted": row["policy_tokens_sampled"] / accepted,
                        "tokens_per_segment": row["tokens_per_segment"],
                        "params": row["params"]})
            print(f"  throughput {mode} x{per_call}: {out[-1]['ms_per_accepted_token']:.1f} ms"
                  f" per accepted token, decode batch {out[-1]['decode_batch_mean']:.1f}",
                  flush=True)
    return out


def group(name: str) -> str:
    """The curve a method belongs to in the plots: its name less its swept value."""
    if name.startswith("best_of_"):
        return "best-of-N"
    if name.startswith("stars_"):
        return f"STARS {name.split('_', 1)[1].split('=')[0]}"
    if name.startswith("cards_"):
        return "CARDS entropy_threshold"
    return name


def plot(tasks: list[dict[str, Any]], path: Path, title: str) -> None:
    plt = _common.pyplot()
    axes_x = [("policy_tokens_sampled", "policy tokens sampled (all prompts)"),
              ("wall_s", "wall time (s, all prompts)")]
    fig, axes = plt.subplots(len(axes_x), len(tasks), figsize=(5.2 * len(tasks), 8.4),
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
                style = {"plain": "k*", "stars": "rD", "cards": "bs"}.get(
                    name, "o-" if len(points) > 1 else "^")
                ax.plot([p[0] for p in points], [p[1] for p in points], style, label=name,
                        markersize=9 if name in ("plain", "stars", "cards") else 5)
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("held-out score (mean)")
            ax.set_title(f"{task['task']}: {task['setup']['held_out']}", fontsize=7)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true",
                        help="best-of-N, and STARS and CARDS settings one at a time")
    parser.add_argument("--throughput", action="store_true",
                        help="STARS and CARDS at 1 and 12 prompts per call")
    parser.add_argument("--task", choices=sorted(quality_tasks.make_tasks(1)), action="append")
    parser.add_argument("--method", action="append",
                        help="run only this method (repeatable); the others are kept")
    parser.add_argument("--prompts", type=int, default=48, help="prompts per task (max 48)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_method(json.loads(args.worker))))
        return

    known = [m["name"] for m in methods(True)]
    known += [m["name"] for t in quality_tasks.make_tasks(1).values() for m in t.methods]
    for method_name in args.method or []:
        if method_name not in known:
            parser.error(f"--method {method_name!r} is not one of: {', '.join(known)}")
    name = "quality_sweep" if args.sweep else "quality"
    machine = _common.machine()
    command = "python " + " ".join(sys.argv)
    previous = _common.RESULTS / f"{name}.json"
    kept: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    tasks = []
    fluency = None
    every = quality_tasks.make_tasks(1)
    # --throughput alone measures only that, keeping every task's last results.
    wanted = args.task or ([] if args.throughput else
                           sorted(n for n, t in every.items() if not t.long_form))
    for task_name in wanted:
        scored_for_fluency = task_name.startswith("coverage")
        if scored_for_fluency and fluency is None:
            fluency = Fluency()
        start = time.perf_counter()
        # Kept runs merge only into a run of the same prompts.
        old = next((t for t in kept.get("tasks", [])
                    if t["task"] == task_name and t["n_prompts"] == args.prompts), None)
        task = run_task(task_name, args.prompts, args.sweep,
                        fluency if scored_for_fluency else None,
                        args.method, old if args.method else None)
        task["best_of_16_target"] = best_of_16_target(task)
        tasks.append({**task, "command": command, "machine": machine,
                      "seconds": time.perf_counter() - start
                      + (old.get("seconds", 0.0) if old and args.method else 0.0)})
    # A run of some tasks replaces those and keeps the others' last results, read again now: a
    # run of other tasks may have finished meanwhile.
    if previous.exists():
        kept = json.loads(previous.read_text())
    if args.task or args.throughput:
        tasks += [t for t in kept.get("tasks", [])
                  if t["task"] not in wanted and "best_of_16_target" in t]
        tasks.sort(key=lambda t: t["task"])
    payload: dict[str, Any] = {"bench": "quality", "command": command, "machine": machine,
                               "tasks": tasks}
    if sum(not t["setup"].get("long_form") for t in tasks) > 1:
        payload["defaults_by_worst_task"] = choose_defaults(tasks)
        payload["tasks_not_discriminating"] = [
            t["task"] for t in tasks if not t["setup"].get("long_form") and not discriminates(t)]
    payload["throughput"] = (throughput(args.prompts) if args.throughput
                             else kept.get("throughput", []))
    out = _common.write_json(name, payload)
    plot(tasks, out.with_suffix(".png"),
         f"held-out score vs compute, {args.prompts} prompts per task, {machine['cpu']}")
    for task in tasks:
        print(f"\n### {task['task']} ({task['n_prompts']} prompts, {task['seconds']:.0f} s)\n")
        print(_common.markdown_table(task["summary"], list(task["summary"][0])))
        print(f"best-of-16 target: {task['best_of_16_target']}")
    if payload.get("defaults_by_worst_task"):
        print("\n### settings by their worst task\n")
        rows = payload["defaults_by_worst_task"]
        print(_common.markdown_table(rows, list(rows[0])))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
