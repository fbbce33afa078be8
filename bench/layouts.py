"""Benchmark: the isolated and the shared KV layouts, what each costs and what batching buys.

Five parts (``--part batching|profile|matrix|single|attention|all``, default all). The
profiled parts run each cell in its own process under Linux perf (bench/kernel_profile.py),
sampling only the measured calls, and report CPU seconds per kind of kernel: products with the
weights, attention over the KV cache, stream copies, threads waiting, the rest.

``batching``: the 12-instruction workload (SmolLM2-135M-Instruct Q4_1, the self-judge
``JudgeReward("policy")`` with the question last, threshold -0.3, soft acceptance, 16-token
segments, 8 attempts, 96 tokens, 2 threads). For each layout: one call of 12 prompts against the
prompts one by one, at the adaptive width (N = 4, the default) and at a fixed N = 1. The same
batching ratio for the question-first judge and for a Python reward (isolated only). Reported
per accepted token: ms, and the policy and reward seconds behind them.

``profile``: the same workload (isolated, adaptive width) for each of the three rewards, one
call against one by one, each profiled: where the CPU time goes, and which of it batching
saves.

``matrix``: each layout for plain decoding and STARS (self-judge, Python reward) at 1, 4 and 16
prompts, on SmolLM2 and Gemma-3-270M, each profiled in its own process: accepted tokens/s, peak
RSS, stream copies and their CPU ms per round, the share of decode time in attention kernels
and the mean decode batch.

``single``: one prompt of about 1,000 and about 7,600 tokens (STARS, N = 4, a Python reward,
64 tokens), each layout in its own process: ms per accepted token, KV copy seconds and peak
RSS, which chose the default layout for a single prompt.

``attention``: the share of decode time in attention kernels, per layout and model: 4
sequences step 32 tokens after prompts of about 16 and about 1,000 tokens, the profile
sampling only those steps (from the first segment on, after the prefill).

    python bench/layouts.py [--part all] [--quick]   # bench/results/layouts[_quick].json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common  # noqa: E402
import kernel_profile  # noqa: E402

import stars_cpp  # noqa: E402
from stars_cpp.models import gemma3_270m_path, smollm2_path  # noqa: E402
from stars_cpp.rewards import lexical_diversity  # noqa: E402

INSTRUCTIONS = (HERE / "data" / "instructions.txt").read_text().splitlines()
LAYOUTS = ("isolated", "shared")
WORKLOAD = dict(threshold=-0.3, acceptance="soft", segment_tokens=16, max_attempts=8,
                max_tokens=96, seed=11)
N_THREADS = 2
ADAPTIVE = dict(candidates=4, width="adaptive")
# The batching workload's rewards; a Python reward on its own scale takes the auto threshold.
REWARDS = {
    "judge_last": (lambda: stars_cpp.JudgeReward("policy", layout="question_last"), {}),
    "judge_first": (lambda: stars_cpp.JudgeReward("policy", layout="question_first"), {}),
    "python_lexical": (lambda: lexical_diversity, {"threshold": "auto"}),
}


def _model_path(model: str) -> str:
    return str(smollm2_path() if model == "smollm2" else gemma3_270m_path())


def _chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _profile(engine: stars_cpp.Engine, calls: list[list[Any]], params: dict[str, Any]
             ) -> dict[str, Any]:
    """Runs each call's prompts in one generate; sums what the engine measured."""
    before = engine.metrics()
    start = time.perf_counter()
    results = [r for prompts in calls for r in engine.generate(prompts, **params)]
    wall = time.perf_counter() - start
    after = engine.metrics()
    accepted = sum(r.stats.tokens_accepted for r in results)
    sampled = sum(r.stats.policy_tokens_sampled for r in results)
    delta = {k: after[k] - before[k] for k in ("decode_seconds", "reward_seconds",
                                                "kv_stream_copies", "rounds",
                                                "candidates_sampled", "decode_calls",
                                                "decode_tokens", "reward_rows")}
    return {
        "wall_s": wall, "tokens_accepted": accepted,
        "ms_per_accepted_token": 1e3 * wall / max(accepted, 1),
        "sampled_per_accepted_token": sampled / max(accepted, 1),
        "policy_s": delta["decode_seconds"], "reward_s": delta["reward_seconds"],
        # Whole-stream copies (isolated): llama.cpp makes them at the next decode, so their
        # time is inside policy_s.
        "stream_copies": delta["kv_stream_copies"],
        "mean_round_width": delta["candidates_sampled"] / max(delta["rounds"], 1),
        "mean_decode_batch": delta["decode_tokens"] / max(delta["decode_calls"], 1),
        "policy_tokens_decoded": delta["decode_tokens"], "reward_rows": delta["reward_rows"],
        "texts": [r.text for r in results],
    }


def _workload(quick: bool) -> tuple[list[Any], dict[str, Any]]:
    """The 12 instructions (4 in --quick) and the workload's parameters."""
    prompts = [_chat(t) for t in INSTRUCTIONS[: 4 if quick else 12]]
    return prompts, {**WORKLOAD, "max_tokens": 32 if quick else WORKLOAD["max_tokens"]}


def batching(quick: bool) -> dict[str, Any]:
    prompts, base = _workload(quick)
    path = str(smollm2_path())
    rows = []

    def measure(layout: str, reward_name: str, reward: Any, widths: dict[str, dict]) -> None:
        engine = stars_cpp.Engine(path, reward, n_ctx=4096, n_threads=N_THREADS,
                                  kv_layout=layout)
        engine.generate(prompts[:2], **{**base, "max_tokens": 16})  # warm: contexts, pages
        for width, extra in widths.items():
            p = {**base, **extra}
            together = _profile(engine, [prompts], p)
            alone = _profile(engine, [[x] for x in prompts], p)
            for how, m in (("one_call", together), ("one_by_one", alone)):
                rows.append({"layout": layout, "reward": reward_name, "width": width, "how": how,
                             **{k: v for k, v in m.items() if k != "texts"},
                             "same_text_as_one_call": m["texts"] == together["texts"]})
            print(f"{layout:9} {reward_name:15} {width:12} one call "
                  f"{together['ms_per_accepted_token']:.1f} ms/tok, one by one "
                  f"{alone['ms_per_accepted_token']:.1f}", flush=True)
        engine.close()

    widths = {"adaptive_n4": ADAPTIVE, "fixed_n1": dict(candidates=1, width="fixed")}
    for layout in LAYOUTS:
        measure(layout, "judge_last", REWARDS["judge_last"][0](), widths)
    for name in ("judge_first", "python_lexical"):
        make, extra = REWARDS[name]
        measure("isolated", name, make(), {"adaptive_n4": {**ADAPTIVE, **extra}})

    def get(layout, reward, width, how):
        return next(r for r in rows if (r["layout"], r["reward"], r["width"], r["how"]) ==
                    (layout, reward, width, how))

    ratios = {}
    for r in rows:
        if r["how"] != "one_call":
            continue
        name = f"{r['layout']}/{r['reward']}/{r['width']}"
        alone = get(r["layout"], r["reward"], r["width"], "one_by_one")
        ratios[name] = {"one_by_one_over_one_call":
                        alone["ms_per_accepted_token"] / r["ms_per_accepted_token"]}
        if r["width"] == "adaptive_n4" and r["reward"] == "judge_last":
            n1 = get(r["layout"], r["reward"], "fixed_n1", "one_call")
            ratios[name]["adaptive_over_fixed_n1"] = (r["ms_per_accepted_token"]
                                                      / n1["ms_per_accepted_token"])
    return {"parameters": {**base, "prompts": len(prompts), "n_threads": N_THREADS,
                           "model": Path(path).name},
            "rows": rows, "ratios": ratios}


def _profiled_child(*args: str) -> tuple[dict[str, Any], str]:
    """This script run with ``args`` in a fresh process under perf (sampling inside its
    ``kernel_profile.window()``): the JSON it prints last, and perf's report."""
    done, report = kernel_profile.run([sys.executable, __file__, *args], windowed=True,
                                      capture_output=True, text=True, check=True, cwd=HERE)
    return json.loads(done.stdout.strip().splitlines()[-1]), report


def _kernels(report: str, rounds: int | None = None) -> dict[str, Any]:
    """A profiled child's CPU seconds per kernel class, and what the tables show of them."""
    seconds = kernel_profile.cpu_seconds(report)
    ggml = kernel_profile.ggml_seconds(seconds)
    out: dict[str, Any] = {
        "cpu_s": {k: round(v, 2) for k, v in sorted(seconds.items())},
        "attention_share": seconds.get("attention", 0.0) / ggml if ggml else None}
    if rounds is not None:
        out["copy_ms_per_round"] = 1e3 * seconds.get("copies", 0.0) / max(rounds, 1)
    return out


def profile_one(reward_name: str, how: str, quick: bool) -> dict[str, Any]:
    """One profiled cell of the batching workload (isolated, adaptive width), in this process."""
    prompts, base = _workload(quick)
    make, extra = REWARDS[reward_name]
    engine = stars_cpp.Engine(str(smollm2_path()), make(), n_ctx=4096, n_threads=N_THREADS,
                              kv_layout="isolated")
    engine.generate(prompts[:2], **{**base, "max_tokens": 16})  # warm: contexts, pages
    calls = [prompts] if how == "one_call" else [[x] for x in prompts]
    with kernel_profile.window():
        m = _profile(engine, calls, {**base, **ADAPTIVE, **extra})
    engine.close()
    return m


def profile(quick: bool) -> list[dict[str, Any]]:
    """Where the batching workload's CPU time goes, one call against one by one."""
    rows = []
    for reward_name in REWARDS:
        for how in ("one_call", "one_by_one"):
            m, report = _profiled_child("--profile-one", reward_name, how,
                                        *(["--quick"] if quick else []))
            rows.append({"reward": reward_name, "how": how, **m, **_kernels(report)})
            print(reward_name, how, f"{m['ms_per_accepted_token']:.1f} ms/tok",
                  rows[-1]["cpu_s"], flush=True)
    texts = {(r["reward"], r["how"]): r.pop("texts") for r in rows}
    for r in rows:
        r["same_texts_as_one_call"] = texts[r["reward"], r["how"]] == texts[r["reward"],
                                                                            "one_call"]
    return rows


def long_prompt(model: Any, n_tokens: int) -> str:
    """About ``n_tokens`` tokens of the instructions, repeated, ending in a request."""
    filler = " ".join(INSTRUCTIONS) + " "
    text = filler
    while len(model.tokenize(text)) < n_tokens:
        text += filler
    words = text.split()
    lo, hi = 1, len(words)
    while lo < hi:  # the most words within n_tokens
        mid = (lo + hi + 1) // 2
        if len(model.tokenize(" ".join(words[:mid]))) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]) + "\nSummarise the requests above in one sentence:"


def one_config(model: str, layout: str, method: str, n_prompts: int, max_tokens: int,
               prompt_tokens: int = 0) -> dict[str, Any]:
    """One matrix cell, run in this (fresh) process so that its peak RSS is its own."""
    path = _model_path(model)
    texts = INSTRUCTIONS[:n_prompts]
    prompts = [_chat(t) for t in texts] if model == "smollm2" else [f"{t}\n" for t in texts]
    # n_ctx is the shared layout's whole pool: the default 4096 holds 16 prompts' requests at
    # once (1024 made the shared rows queue and step fewer at a time).
    n_ctx = 8192 if prompt_tokens else 4096
    reward = {"plain": None, "stars_judge": stars_cpp.JudgeReward("policy"),
              "stars_python": lexical_diversity}[method]
    engine = stars_cpp.Engine(path, reward, n_ctx=n_ctx, n_threads=N_THREADS, kv_layout=layout)
    if prompt_tokens:
        prompts = [long_prompt(engine.model, prompt_tokens)]
    params = dict(max_tokens=max_tokens, seed=5, segment_tokens=16)
    if method == "plain":
        params["mode"] = "plain"
    with kernel_profile.window():
        m = _profile(engine, [prompts], params)
    rounds = engine.metrics()["rounds"]
    return {"model": model, "layout": layout, "method": method, "prompts": n_prompts,
            "accepted_tokens_per_s": m["tokens_accepted"] / m["wall_s"],
            "peak_rss_mib": round(_common.peak_rss_mib(), 1),
            "stream_copies_per_round": m["stream_copies"] / max(rounds, 1),
            "ms_per_accepted_token": m["ms_per_accepted_token"],
            "sampled_per_accepted_token": m["sampled_per_accepted_token"],
            "prompt_tokens": prompt_tokens or None,
            "policy_s": m["policy_s"], "reward_s": m["reward_s"], "wall_s": m["wall_s"],
            "mean_decode_batch": m["mean_decode_batch"], "rounds": rounds}


def matrix(quick: bool) -> list[dict[str, Any]]:
    rows = []
    models = ("smollm2",) if quick else ("smollm2", "gemma")
    sizes = (1, 4) if quick else (1, 4, 16)
    for model in models:
        for method in ("plain", "stars_judge", "stars_python"):
            for n in sizes:
                for layout in LAYOUTS:
                    rows.append(in_own_process(model, layout, method, n, 16 if quick else 48))
    return rows


def in_own_process(*config: Any) -> dict[str, Any]:
    """one_config(*config) in a fresh process (its own peak RSS), its generate profiled."""
    row, report = _profiled_child("--one", *map(str, config))
    row.update(_kernels(report, row["rounds"]))
    print(" ".join(map(str, config)), f"{row['ms_per_accepted_token']:.1f} ms/tok",
          f"{row['peak_rss_mib']:.0f} MiB", f"attention {row['attention_share']:.2f}",
          flush=True)
    return row


def single(quick: bool) -> list[dict[str, Any]]:
    rows = []
    for prompt_tokens in (1000,) if quick else (1000, 7600):
        for layout in LAYOUTS:
            rows.append(in_own_process("smollm2", layout, "stars_python", 1, 64, prompt_tokens))
    return rows


def attention_one(model: str, layout: str, length: str) -> dict[str, Any]:
    """4 sequences step 32 tokens after their prompts; the profile covers only those steps."""
    path = _model_path(model)
    # n_ctx is the shared layout's whole pool: 4 long prompts need 4 x ~1,060 cells, or they
    # queue and step fewer at a time (each layout's steps must carry all 4).
    engine = stars_cpp.Engine(path, n_ctx=8192, n_threads=N_THREADS, kv_layout=layout)
    text = "Once upon a time" if length == "short" else ((" ".join(INSTRUCTIONS) + " ") * 8)[:4500]
    prompts = [f"{i} {text}" for i in range(4)]
    p = dict(mode="plain", seed=1, temperature=0.0, segment_tokens=8)
    engine.generate(prompts, max_tokens=2, **p)  # warm at this size
    # Plain segments arrive every 8 steps: sampling starts at the first one (after the
    # prefill) and the time from each prompt's first to its fifth segment is 32 steps.
    window = kernel_profile.Window()
    stamps: dict[int, list[float]] = {}

    def stamp(i: int, _segment: Any) -> None:
        if not stamps:
            window.start()
        stamps.setdefault(i, []).append(time.perf_counter())

    results = engine.generate(prompts, max_tokens=40, on_segment=stamp, **p)
    window.stop()
    window.close()
    # A response that ends early sends fewer segments: time per step from each prompt's own
    # count, and the tokens kept to show how wide the steps stayed.
    step_ms = 1e3 * max((t[-1] - t[0]) / (8 * (len(t) - 1)) for t in stamps.values()
                        if len(t) > 1)
    row = {"model": model, "layout": layout, "prompt": length, "step_ms": step_ms,
           "prompt_tokens": len(engine.model.tokenize(prompts[0])),
           "response_tokens": [len(r.tokens) for r in results]}
    engine.close()
    return row


def attention(quick: bool) -> list[dict[str, Any]]:
    """The share of decode time in attention kernels, after short and long prompts."""
    rows = []
    for model in ("smollm2",) if quick else ("smollm2", "gemma"):
        for layout in LAYOUTS:
            for length in ("short", "long"):
                row, report = _profiled_child("--attention-one", model, layout, length)
                rows.append({**row, **_kernels(report)})
                print({k: v for k, v in rows[-1].items() if k != "cpu_s"}, flush=True)
    return rows


def markdown(payload: dict[str, Any]) -> str:
    """The tables of docs/stars.md ("KV layouts and reproducibility"), from a layouts JSON."""
    lines = []
    if "batching" in payload:
        lines += ["| layout | reward | width | one call, ms / accepted token | one by one | "
                  "ratio | policy s | reward s | sampled / accepted |",
                  "|---|---|---|---|---|---|---|---|---|"]
        rows = payload["batching"]["rows"]
        for r in rows:
            if r["how"] != "one_call":
                continue
            alone = next(x for x in rows if x["how"] == "one_by_one" and all(
                x[k] == r[k] for k in ("layout", "reward", "width")))
            lines.append(
                f"| {r['layout']} | {r['reward']} | {r['width']} | "
                f"{r['ms_per_accepted_token']:.1f} | {alone['ms_per_accepted_token']:.1f} | "
                f"{alone['ms_per_accepted_token'] / r['ms_per_accepted_token']:.2f}x | "
                f"{r['policy_s']:.1f} / {alone['policy_s']:.1f} | "
                f"{r['reward_s']:.1f} / {alone['reward_s']:.1f} | "
                f"{r['sampled_per_accepted_token']:.2f} / "
                f"{alone['sampled_per_accepted_token']:.2f} |")
    if "profile" in payload:
        shown = ("weights", "attention", "matmul_loop", "threads")
        lines += ["", "| reward | how | ms / accepted token | sampled / accepted | policy s | "
                  "reward s | " + " | ".join(f"{c} CPU s" for c in shown) + " | rest CPU s |",
                  "|" + "---|" * (7 + len(shown))]
        for r in payload["profile"]:
            rest = sum(v for k, v in r["cpu_s"].items() if k not in shown)
            lines.append(f"| {r['reward']} | {r['how']} | {r['ms_per_accepted_token']:.1f} | "
                         f"{r['sampled_per_accepted_token']:.2f} | "
                         f"{r['policy_s']:.1f} | {r['reward_s']:.1f} | "
                         + " | ".join(f"{r['cpu_s'].get(c, 0.0):.1f}" for c in shown)
                         + f" | {rest:.1f} |")
    if "matrix" in payload:
        # One line per cell, isolated / shared side by side.
        lines += ["", "| model | method | prompts | accepted tokens/s | sampled / accepted | "
                  "peak RSS MiB | stream copies / round | memcpy CPU ms / round | "
                  "attention share | decode batch |", "|" + "---|" * 10]
        rows = payload["matrix"]
        for r in (x for x in rows if x["layout"] == "isolated"):
            sh = next(x for x in rows if x["layout"] == "shared" and all(
                x[k] == r[k] for k in ("model", "method", "prompts")))

            def pair(key: str, fmt: str, iso: dict = r, shared: dict = sh) -> str:
                return f"{iso[key]:{fmt}} / {shared[key]:{fmt}}"

            lines.append(f"| {r['model']} | {r['method']} | {r['prompts']} | "
                         f"{pair('accepted_tokens_per_s', '.1f')} | "
                         f"{pair('sampled_per_accepted_token', '.2f')} | "
                         f"{pair('peak_rss_mib', '.0f')} | {r['stream_copies_per_round']:.1f} | "
                         f"{pair('copy_ms_per_round', '.1f')} | "
                         f"{pair('attention_share', '.2f')} | {pair('mean_decode_batch', '.1f')} |")
    for part, columns in (("single", ("prompt_tokens", "layout", "ms_per_accepted_token",
                                      "peak_rss_mib")),
                          ("attention", ("model", "layout", "prompt", "prompt_tokens",
                                         "step_ms", "attention_share"))):
        if part not in payload:
            continue
        lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for r in payload[part]:
            cells = [f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("all", "batching", "profile", "matrix", "single",
                                           "attention"),
                        default="all")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--profile-one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--attention-one", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--markdown", action="store_true",
                        help="print the tables of docs/stars.md from the results JSON and exit")
    args = parser.parse_args()
    if args.one:
        model, layout, method, *numbers = args.one
        print(json.dumps(one_config(model, layout, method, *map(int, numbers))))
        return
    if args.profile_one:
        print(json.dumps(profile_one(*args.profile_one, args.quick)))
        return
    if args.attention_one:
        print(json.dumps(attention_one(*args.attention_one)))
        return
    name = "layouts_quick" if args.quick else "layouts"
    out = _common.RESULTS / f"{name}.json"
    if args.markdown:
        print(markdown(json.loads(out.read_text())))
        return
    payload = json.loads(out.read_text()) if out.exists() else {}
    payload["machine"] = _common.machine()
    if args.part in ("all", "batching"):
        payload["batching"] = batching(args.quick)
    if args.part in ("all", "profile"):
        payload["profile"] = profile(args.quick)
    if args.part in ("all", "attention"):
        payload["attention"] = attention(args.quick)
    if args.part in ("all", "matrix"):
        payload["matrix"] = matrix(args.quick)
    if args.part in ("all", "single"):
        payload["single"] = single(args.quick)
    print(_common.write_json(name, payload))


if __name__ == "__main__":
    main()
