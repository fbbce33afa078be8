"""Renders the Performance tables (docs/performance.md) from bench/results/*.json.

    python bench/report.py          # print the tables
    python bench/report.py --docs   # replace docs/performance.md's generated block with them

Only the numbers are generated; the prose around them in docs/performance.md is written by hand.
`--readme` is the old name of `--docs` (the tables lived in README.md once).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "performance.md"
# Images as docs/performance.md links them.
IMAGES = "../bench/results"
BEGIN, END = "<!-- bench/report.py: begin -->", "<!-- bench/report.py: end -->"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def where(data: dict[str, Any]) -> str:
    m = data["machine"]
    device = m.get("gpu") or f"{m['cpu']}, {m['cores']} cores"
    return (f"{device}, {m['backend']}, llama-cpp-python {m['llama_cpp_python']}, "
            f"{m['date'][:10]}")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(row) + " |" for row in rows])


def decode_ceiling(name: str, title: str) -> list[str]:
    data = load(name)
    if data is None:
        return []
    # Runs before backend sampling measured the host path alone, as "engine".
    samplings = data.get("samplings", [""])
    header = ["batch", "ceiling tok/s"]
    for sampling in samplings:
        label = f"engine ({sampling}) " if sampling else "engine "
        header += [label + "tok/s", label + "/ ceiling"]
    rows = []
    for r in data["results"]:
        row = [str(r["batch"]), f"{r['ceiling_tokens_per_s']:.0f}"]
        for sampling in samplings:
            tps = r[f"engine_{sampling}_tokens_per_s" if sampling else "engine_tokens_per_s"]
            share = r[f"efficiency_{sampling}" if sampling else "efficiency"]
            row += [f"{tps:.0f}", f"{share:.0%}"]
        rows.append(row)
    out = [f"**{title}**: {data['model']}; {where(data)}; `{data['command']}`", ""]
    out += table(header, rows) + [""]
    if data.get("stars_vs_plain"):
        out += table(["sampling", "plain ms / accepted token", "STARS N=4 ms / accepted token",
                      "STARS / plain"],
                     [[r["sampling"], f"{r['plain_ms_per_accepted_token']:.2f}",
                       f"{r['stars_ms_per_accepted_token']:.2f}", f"{r['stars_over_plain']:.2f}x"]
                      for r in data["stars_vs_plain"]]) + [""]
    return out + [f"![{name}]({IMAGES}/{name}.png)", ""]


def backend_sampling() -> list[str]:
    data = load("backend_sampling")
    if data is None:
        return []
    out = [f"**Sampling in the graph against on the host, CPU backend**: {data['model']}; "
           f"{where(data)}; `{data['command']}` (median of {data['repeats']}, "
           f"{data['max_tokens']} tokens per response)", ""]
    out += table(["mode", "sequences", "host ms / accepted token",
                  "backend ms / accepted token", "backend / host"],
                 [[r["mode"], str(r["sequences"]), f"{r['host_ms_per_accepted']:.2f}",
                   f"{r['backend_ms_per_accepted']:.2f}", f"{r['backend_over_host']:.2f}x"]
                  for r in data["rows"]]) + [""]
    return out


def vs_python() -> list[str]:
    data = load("vs_python")
    if data is None:
        return []
    p = data["parameters"]
    out = [f"**STARS against Python**: {p['model']}, reward `{p['reward']}`, "
           f"K={p['segment_tokens']}, N={p['candidates']}, M={p['max_attempts']}, "
           f"T={p['max_tokens']}, {len(p['prompts'])} prompts one at a time, "
           f"{p['acceptance']} acceptance; {where(data)}; `python bench/vs_python.py`", ""]
    rows = []
    for run in data["runs"]:
        for name, m in run["methods"].items():
            ratio = run["stars_cpp_vs"].get(name)
            rows.append([str(run["threshold"]), name, f"{m['ms_per_accepted_token']:.1f}",
                         f"{m['candidate_tokens_per_s']:.0f}",
                         f"{m['attempts_per_segment']:.2f}",
                         f"{ratio['speedup_time_per_accepted_token']:.2f}x" if ratio
                         else "", ])
    return out + table(["tau*", "method", "ms / accepted token", "candidate tok/s",
                        "attempts / segment", "stars_cpp speedup per accepted token"], rows) + [
        "", f"![vs_python]({IMAGES}/vs_python.png)", ""]


def reward_cost() -> list[str]:
    data = load("reward_cost")
    if data is None:
        return []
    rows = []
    for reward in data["results"]:
        for r in reward["rows"]:
            rows.append([reward["reward"], str(r["prefix_tokens"]), f"{r['round_ms']:.0f}",
                         f"{r['ms_per_candidate']:.0f}",
                         f"{r['tokens_decoded_per_candidate']:.0f}",
                         f"{reward['peak_rss_mib']:.0f}"])
    return [f"**Reward cost**: one round of {data['candidates']} candidates of "
            f"{data['segment_tokens']} tokens; {where(data)}; `{data['command']}`", ""] + table(
        ["reward", "prefix tokens", "round ms", "ms / candidate", "tokens decoded / candidate",
         "peak RSS MiB"], rows) + ["", f"![reward_cost]({IMAGES}/reward_cost.png)", ""]


def _cell(rows: dict[str, dict[str, Any]], method: str, key: str, form: str) -> str:
    return format(rows[method][key], form) if method in rows else "-"


def quality() -> list[str]:
    data = load("quality_sweep")
    if data is None or not all("best_of_16_target" in t for t in data["tasks"]):
        return []  # none yet, or a run of the bench before its five tasks
    short = sum(not t["setup"].get("long_form") for t in data["tasks"])
    long = len(data["tasks"]) - short
    out = [f"**Quality**, {short} of the five tasks" + (f" and {long} long-form" if long else "")
           + f"; {where(data)}; last command `{data['command']}`", ""]
    # The summary: each task's win rate against plain at the defaults, and the best-of-16 target.
    rows = []
    for task in data["tasks"]:
        by = {r["method"]: r for r in task["summary"]}
        t = task.get("best_of_16_target") or {}
        rows.append([task["task"], _cell(by, "stars", "win_rate_vs_plain", ".2f"),
                     _cell(by, "cards", "win_rate_vs_plain", ".2f"),
                     _cell(by, "stars", "policy_tokens_per_accepted", ".2f"),
                     _cell(by, "stars", "ms_per_accepted_token", ".1f"),
                     f"{t.get('best_of_16_held_out', float('nan')):.3f}",
                     f"{t.get('method', '')} {t.get('held_out', float('nan')):.3f}",
                     f"{t.get('token_share', float('nan')):.0%}",
                     "yes" if t.get("reached") else "no"])
    out += table(["task", "STARS win vs plain", "CARDS win vs plain",
                  "STARS policy tokens / accepted", "STARS ms / accepted",
                  "best-of-16 held-out", "closest STARS/CARDS", "its tokens / best-of-16's",
                  "reached"], rows) + [""]
    for task in data["tasks"]:
        s = task["setup"]
        out += [f"**{task['task']}**: {task['n_prompts']} prompts, policy {s['policy']}, reward "
                f"{s['reward']}, held out: {s['held_out']} ({task['seconds'] / 60:.1f} min)", ""]
        fluency = any("fluency" in r for r in task["summary"])
        rows = [[r["method"], f"{r['mean_reward']:.3f}", f"{r['held_out_mean']:.3f}",
                 f"{r['win_rate_vs_plain']:.2f}", str(r["policy_tokens_sampled"]),
                 f"{r['policy_tokens_per_accepted']:.2f}", f"{r['ms_per_accepted_token']:.1f}",
                 f"{r['tokens_per_segment']:.1f}"]
                + ([f"{r['fluency']:.2f}"] if fluency else [])
                for r in task["summary"]]
        out += table(["method", "mean reward", "held-out", "win vs plain", "policy tokens",
                      "policy tokens / accepted", "ms / accepted", "tokens / segment"]
                     + (["fluency (Gemma log-prob / token)"] if fluency else []), rows)
        out.append("")
    choice = data.get("defaults_by_worst_task")
    if choice:
        tasks = [k[4:] for k in choice[0] if k.startswith("win_")]
        skipped = data.get("tasks_not_discriminating") or []
        out += ["**Settings, the choice first**: the cheapest that wins at least 0.65 on every "
                "task, then the others by their worst task (settings run on every task" + (
                    f"; not counted, since best-of-16 wins less than 0.65 there: "
                    f"{', '.join(skipped)}" if skipped else "") + "):", ""]
        out += table(["setting", "wins 0.65 everywhere", "worst win rate", "worst task",
                      "mean win rate", "policy tokens / accepted"] + [f"win {t}" for t in tasks],
                     [[r["method"], "yes" if r.get("meets_target") else "no",
                       f"{r['worst_win_rate']:.2f}", r["worst_task"],
                       f"{r['mean_win_rate']:.2f}", f"{r['policy_tokens_per_accepted']:.2f}"]
                      + [f"{r['win_' + t]:.2f}" for t in tasks] for r in choice]) + [""]
    if data.get("throughput"):
        n = data["throughput"][0].get("prompts", 48)
        out += [f"**STARS and CARDS at 1 and 12 prompts per call** (sentiment_smollm2, {n} "
                "prompts, each mode at its defaults):", ""]
        out += table(["mode", "prompts per call", "ms / accepted", "decode batch (mean)",
                      "decodes / accepted", "policy tokens / accepted", "tokens / segment"],
                     [[r["method"], str(r["prompts_per_call"]),
                       f"{r['ms_per_accepted_token']:.1f}", f"{r['decode_batch_mean']:.1f}",
                       f"{r['decode_calls_per_accepted']:.2f}",
                       f"{r['policy_tokens_per_accepted']:.2f}", f"{r['tokens_per_segment']:.1f}"]
                      for r in data["throughput"]]) + [""]
    return out + [f"![quality]({IMAGES}/quality_sweep.png)", ""]


def confident_errors() -> list[str]:
    data = load("confident_errors")
    if data is None:
        return []
    out = ["**Confident errors** (do entropy-ended segments miss them?): errors the reward counts "
           "against a text, and how many the policy drew with an entropy below 2 and 3 nats "
           f"(where CARDS would not end a segment); {where(data)}; `{data['command']}`", ""]
    for task in data["tasks"]:
        out += [f"*{task['task']}* ({task['n_prompts']} prompts; error: "
                + data["errors"]["bullets" if task["task"] == "bullets" else "sentiment"] + ")",
                ""]
        out += table(["method", "tokens / segment", "errors", "per 100 tokens", "vs plain",
                      "confident < 2 nats", "confident < 3 nats", "confident < 3, vs plain"],
                     [[r["method"], f"{r['tokens_per_segment']:.1f}", str(r["errors"]),
                       f"{r['errors_per_100_tokens']:.2f}", f"{r['errors_vs_plain']:.2f}",
                       str(r["confident_below_2"]), str(r["confident_below_3"]),
                       f"{r['confident_vs_plain_below_3']:.2f}"] for r in task["rows"]]) + [""]
    return out


def render() -> str:
    parts = (decode_ceiling("decode_ceiling", "Decode ceiling, CPU")
             + decode_ceiling("decode_ceiling_quick",
                              "Decode ceiling, CPU, host and backend sampling (--quick)")
             + decode_ceiling("decode_ceiling_gpu_h100", "Decode ceiling, GPU (H100)")
             + decode_ceiling("decode_ceiling_gpu_h200", "Decode ceiling, GPU (H200)")
             + decode_ceiling("decode_ceiling_vulkan_lavapipe",
                              "Decode ceiling, Vulkan on lavapipe (`bench/gpu.sh --vulkan`: the "
                              "format on a device without a GPU, not its speed)")
             + backend_sampling() + vs_python() + reward_cost() + quality() + confident_errors())
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", "--readme", dest="docs", action="store_true",
                        help="rewrite docs/performance.md's block (--readme: the old name)")
    args = parser.parse_args()
    text = render()
    if not args.docs:
        print(text)
        return
    old = DOC.read_text()
    if BEGIN not in old or END not in old:
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} block")
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END),
                 lambda _: f"{BEGIN}\n{text}{END}", old, flags=re.S)
    DOC.write_text(new)
    print(f"rewrote the Performance tables in {DOC}")


if __name__ == "__main__":
    main()
