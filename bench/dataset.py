"""Dataset throughput: `stars_cpp.run_dataset` on SmolLM2 over instructions as chat records, in
one process at --batch 1, 4 and 16 and on Ray with 1 and 2 Engine actors, plus the time a
resume takes when everything is done already (reading OUT and skipping every id).

STARS mode with a cheap Python reward (lexical diversity), so that the numbers are the policy
loop's and the dataset machinery's, not a reward model's. The 50 instructions of
bench/data/instructions.txt are repeated with distinct ids (distinct prompt keys).

    python bench/dataset.py [--quick] [--records 200] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import stars_cpp  # noqa: E402
from stars_cpp.models import smollm2_path  # noqa: E402
from stars_cpp.rewards import lexical_diversity  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "instructions.txt"
REWARD = "python:stars_cpp.rewards:lexical_diversity"


def write_records(path: Path, n: int) -> None:
    instructions = [line.strip() for line in DATA.read_text().splitlines() if line.strip()]
    with open(path, "w") as f:
        for i in range(n):
            text = instructions[i % len(instructions)]
            f.write(json.dumps({"id": f"i{i}", "messages": [{"role": "user", "content": text}]})
                    + "\n")


def summarize(label: str, seconds: float, summary: dict, extra: dict | None = None) -> dict:
    row = {"run": label, "seconds": seconds, "records": summary["records"],
           "errors": summary["errors"], "tokens_accepted": summary["tokens_accepted"],
           "tokens_sampled": summary["tokens_sampled"],
           "records_per_s": summary["records"] / seconds,
           "tokens_per_s": summary["tokens_accepted"] / seconds, **(extra or {})}
    print(f"{label:22s} {seconds:7.1f} s  {row['records_per_s']:6.2f} rec/s  "
          f"{row['tokens_per_s']:7.1f} tok/s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 records, 16 tokens")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--model", default=None, help="GGUF (default: packaged SmolLM2)")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--name", default=None, help="results file stem")
    args = parser.parse_args()

    model = args.model or str(smollm2_path())
    n = args.records or (40 if args.quick else 200)
    params = {"segment_tokens": 8, "max_tokens": args.max_tokens or (16 if args.quick else 32),
              "seed": 1}
    work = Path(tempfile.mkdtemp(prefix="stars_dataset_"))
    records = work / "in.jsonl"
    write_records(records, n)
    rows = []
    outputs = {}
    for batch in (1, 4, 16):
        out = work / f"batch{batch}.jsonl"
        summary: dict = {}
        start = time.perf_counter()
        engine = stars_cpp.Engine(model, lexical_diversity, n_ctx=8192)
        for _ in stars_cpp.run_dataset(records, out, engine=engine, params=params,
                                       reward_spec=REWARD, model=model, batch=batch,
                                       quiet=True, summary=summary):
            pass
        rows.append(summarize(f"process, batch {batch}", time.perf_counter() - start, summary,
                              {"batch": batch, "workers": 0}))
        outputs[f"batch{batch}"] = out
        engine.close()

    # Resume of a finished run: read OUT and the meta, skip every id, load the model.
    start = time.perf_counter()
    engine = stars_cpp.Engine(model, lexical_diversity, n_ctx=8192)
    summary = {}
    for _ in stars_cpp.run_dataset(records, outputs["batch16"], engine=engine, params=params,
                                   reward_spec=REWARD, model=model, batch=16, quiet=True,
                                   summary=summary):
        pass
    resume_seconds = time.perf_counter() - start
    engine.close()
    print(f"resume with all {n} records done: {resume_seconds:.2f} s", flush=True)

    if not args.skip_ray:
        import ray

        from stars_cpp import ray as stars_ray

        os.chdir(work)  # Ray workers must not import the source tree
        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        init_seconds = time.perf_counter() - start
        print(f"ray.init: {init_seconds:.1f} s", flush=True)
        for workers in (1, 2):
            out = work / f"ray{workers}.jsonl"
            summary = {}
            start = time.perf_counter()
            settings = {"reward": REWARD, "n_ctx": 8192,
                        "n_threads": max(1, (os.cpu_count() or 2) // workers)}
            for _ in stars_ray.run(records, out, model=model, engine_settings=settings,
                                   params=params, workers=workers, batch=16, quiet=True,
                                   summary=summary):
                pass
            rows.append(summarize(f"ray, {workers} worker(s)", time.perf_counter() - start,
                                  summary, {"batch": 16, "workers": workers,
                                            "ray_init_seconds": init_seconds}))
            outputs[f"ray{workers}"] = out
        ray.shutdown()

    texts = {name: {json.loads(line)["id"]: json.loads(line).get("text")
                    for line in path.read_text().splitlines()} for name, path in outputs.items()}
    identical = all(t == texts["batch1"] for t in texts.values())
    print(f"outputs identical across runs: {identical}")
    payload = {"bench": "dataset", "machine": _common.machine(), "model": Path(model).name,
               "records": n, "params": params, "rows": rows,
               "resume_all_done_seconds": resume_seconds, "outputs_identical": identical}
    out = _common.write_json(args.name or ("dataset_quick" if args.quick else "dataset"),
                             payload)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
