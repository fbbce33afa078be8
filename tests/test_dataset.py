"""`stars-cpp run` and `stars_cpp.run_dataset`: exact resume after kill -9, batch and order
independence, error records, refusal of changed parameters, and Ray workers. Tiny F32 model:
a record's output must depend on its id only."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from interrupted_runs import kill_9_after

import stars_cpp

TESTS = Path(__file__).parent
# A fixed width keeps every round 4 rows wide. An adaptive round can be 1 row, and llama.cpp's
# CPU matmul rounds a single row differently from several, which can flip a near-tied draw
# (measured: 1 record in 24 under CPU load). The keys make outputs batch-independent; the
# numerics are llama.cpp's.
PARAMS = {"segment_tokens": 4, "max_tokens": 24, "seed": 7, "width": "fixed"}
LEXICAL = "python:stars_cpp.rewards:lexical_diversity"


def write_records(path: Path, n: int = 24, shuffle: bool = False) -> Path:
    records = [{"id": f"rec-{i}", "prompt": f"Story {i} begins"} if i % 3 else
               {"id": f"rec-{i}", "messages": [{"role": "user", "content": f"Tell story {i}"}]}
               for i in range(n)]
    if shuffle:
        random.Random(3).shuffle(records)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_out(path: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_id = {line["id"]: line for line in lines}
    assert len(by_id) == len(lines), "an id was written twice"
    return by_id


def cli(tiny_llama, *args, reward="python:deterministic_rewards:slow_hash_reward"):
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return [sys.executable, "-m", "stars_cpp", "run", *map(str, args), "--model",
            str(tiny_llama), "--reward", reward, "--segment-tokens", "4", "--max-tokens", "24",
            "--seed", "7", "--width", "fixed", "--quiet"], env


def test_kill_9_then_resume_gives_every_record_once_as_an_uninterrupted_run(tiny_llama,
                                                                            tmp_path):
    records = write_records(tmp_path / "in.jsonl")
    whole, killed = tmp_path / "whole.jsonl", tmp_path / "killed.jsonl"
    command, env = cli(tiny_llama, records, "--output", whole, "--batch", "2")
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=300)

    command, env = cli(tiny_llama, records, "--output", killed, "--batch", "2")
    assert 5 <= kill_9_after(command, env, tmp_path, killed, 5, timeout=120) < 24
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=300)
    expected = read_out(whole)
    got = read_out(killed)
    assert set(got) == set(expected) and len(got) == 24
    assert {k: v["text"] for k, v in got.items()} == {k: v["text"] for k, v in expected.items()}

    # A torn last line (a crash mid-write) is dropped and its record redone.
    data = killed.read_bytes()
    torn_id = json.loads(data.splitlines()[-1])["id"]
    killed.write_bytes(data[:-15])
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=300)
    got = read_out(killed)
    assert len(got) == 24 and got[torn_id]["text"] == expected[torn_id]["text"]


def run_api(tiny_llama, records: Path, out: Path, batch: int, n: int = 24) -> dict[str, dict]:
    engine = stars_cpp.Engine(str(tiny_llama), stars_cpp.rewards.lexical_diversity,
                              n_ctx=4096)
    lines = list(stars_cpp.run_dataset(records, out, engine=engine, params=PARAMS,
                                       reward_spec=LEXICAL, model=str(tiny_llama),
                                       batch=batch, quiet=True, trace=True))
    assert len(lines) == n
    return read_out(out)


def test_outputs_do_not_depend_on_batch_or_order(tiny_llama, tmp_path):
    records = write_records(tmp_path / "in.jsonl")
    shuffled = write_records(tmp_path / "shuffled.jsonl", shuffle=True)
    one = run_api(tiny_llama, records, tmp_path / "b1.jsonl", 1)
    eight = run_api(tiny_llama, records, tmp_path / "b8.jsonl", 8)
    mixed = run_api(tiny_llama, shuffled, tmp_path / "shuffled_out.jsonl", 8)
    for outputs in (eight, mixed):
        assert {k: (v["text"], v["segments"]) for k, v in outputs.items()} == \
            {k: (v["text"], v["segments"]) for k, v in one.items()}
    assert all(v["segments"] and v["finish_reason"] == "length" for v in one.values())


def test_bad_records_become_error_records(tiny_llama, tmp_path):
    records = tmp_path / "in.jsonl"
    records.write_text("\n".join([
        json.dumps({"id": "good", "prompt": "Once"}),
        "{not json",
        json.dumps({"id": "empty", "prompt": ""}),
        json.dumps({"id": "nothing"}),
        json.dumps({"id": "long", "prompt": "word " * 5000}),
        json.dumps({"id": "chat", "messages": [{"role": "user"}]}),
        json.dumps({"id": "good2", "messages": [{"role": "user", "content": "Hi"}]}),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    command, env = cli(tiny_llama, records, "--output", out, reward=LEXICAL)
    proc = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = read_out(out)
    assert set(got) == {"good", "line 2", "empty", "nothing", "long", "chat", "good2"}
    assert got["good"]["text"] and got["good2"]["text"]
    kinds = {k: v["error"]["type"] for k, v in got.items() if "error" in v}
    assert kinds == {"line 2": "invalid_json", "empty": "no_prompt", "nothing": "no_prompt",
                     "long": "ContextLengthError", "chat": "invalid_prompt"}
    assert "n_ctx=4096" in got["long"]["error"]["message"]

    # --fail-fast stops at the first one instead, with a one-line error.
    command, env = cli(tiny_llama, records, "--output", tmp_path / "ff.jsonl", "--fail-fast",
                       "--batch", "1", reward=LEXICAL)
    proc = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "record line 2" in proc.stderr, proc.stderr


def test_a_changed_parameter_is_refused_on_resume(tiny_llama, tmp_path):
    records = write_records(tmp_path / "in.jsonl", n=4)
    out = tmp_path / "out.jsonl"
    command, env = cli(tiny_llama, records, "--output", out, reward=LEXICAL)
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=120)
    before = out.read_text()
    proc = subprocess.run([*command, "--candidates", "3"], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "params.candidates: 4 -> 3" in proc.stderr, proc.stderr
    assert out.read_text() == before  # nothing lost
    # The same command resumes with nothing left to do.
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=120)
    assert out.read_text() == before


def test_ray_workers_give_the_single_process_outputs(tiny_llama, tmp_path, monkeypatch):
    import ray

    from stars_cpp import ray as stars_ray

    records = write_records(tmp_path / "in.jsonl")
    single = run_api(tiny_llama, records, tmp_path / "single.jsonl", 8)
    # Ray's workers start in the driver's directory: not the repository root, where
    # `import stars_cpp` would find the source tree instead of the installed package.
    monkeypatch.chdir(tmp_path)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        lines = list(stars_ray.run(records, tmp_path / "ray.jsonl", model=str(tiny_llama),
                                   engine_settings={"reward": LEXICAL}, params=PARAMS,
                                   workers=2, batch=4, trace=True, quiet=True))
        # The workers' engines take the engine options too.
        backend = list(stars_ray.run(records, tmp_path / "backend.jsonl", model=str(tiny_llama),
                                     engine_settings={"reward": LEXICAL, "sampling": "backend"},
                                     params=PARAMS, workers=2, batch=4, quiet=True))
    finally:
        ray.shutdown()
    assert len(lines) == 24 and len(backend) == 24
    got = read_out(tmp_path / "ray.jsonl")
    assert {k: (v["text"], v["segments"]) for k, v in got.items()} == \
        {k: (v["text"], v["segments"]) for k, v in single.items()}
    assert all(v["stats"]["backend_tokens_sampled"] == 0 for v in got.values())
    on_backend = read_out(tmp_path / "backend.jsonl").values()
    assert all(v["stats"]["backend_tokens_sampled"] > 0 for v in on_backend)


def test_parquet_in_and_out(tiny_llama, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = write_records(tmp_path / "in.jsonl", n=6)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    rows = [{"id": r["id"], "prompt": r.get("prompt"), "messages": r.get("messages")} for r in rows]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    expected = run_api(tiny_llama, jsonl, tmp_path / "jsonl_out.jsonl", 4, n=6)
    out = tmp_path / "out.parquet"
    engine = stars_cpp.Engine(str(tiny_llama), stars_cpp.rewards.lexical_diversity, n_ctx=4096)
    lines = list(stars_cpp.run_dataset(tmp_path / "in.parquet", out, engine=engine,
                                       params=PARAMS, reward_spec=LEXICAL, model=str(tiny_llama),
                                       batch=4, quiet=True, trace=True))
    assert len(lines) == 6
    table = pq.read_table(out).to_pylist()
    assert {r["id"]: r["text"] for r in table} == {k: v["text"] for k, v in expected.items()}
    assert all(r.get("error") is None and r["segments"] for r in table)
    # The journal beside it makes the Parquet run resumable like a JSONL one.
    assert (tmp_path / "out.parquet.jsonl").exists()


def test_ids_keep_their_type_and_a_generated_id_never_takes_a_given_one(tiny_llama, tmp_path):
    records = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": 1, "prompt": "one"}), json.dumps({"id": "1", "prompt": "uno"}),
             "{not json", json.dumps({"id": "line 3", "prompt": "three"}),
             json.dumps({"prompt": "no id"}), json.dumps({"id": 2.5, "prompt": "float"})]
    # A byte order mark is not part of record 1.
    records.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    out = tmp_path / "out.jsonl"
    command, env = cli(tiny_llama, records, "--output", out, reward=LEXICAL)
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=120)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    by_id = {json.dumps(line["id"]): line for line in got}
    assert len(by_id) == len(got) == 6
    assert by_id["1"]["text"] and by_id['"1"']["text"]  # 1 and "1": two records
    assert by_id['"line 3"']["text"] and by_id['"line 5"']["text"]
    assert by_id['"line 3\'"']["error"]["type"] == "invalid_json"
    assert by_id['"line 6"']["error"]["type"] == "invalid_id"
    assert "2.5" in by_id['"line 6"']["error"]["message"]
    before = out.read_text()
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=120)
    assert out.read_text() == before  # resume: every typed id is done


def test_resume_drops_only_a_torn_last_line(tiny_llama, tmp_path):
    records = write_records(tmp_path / "in.jsonl", n=6)
    out = tmp_path / "out.jsonl"
    command, env = cli(tiny_llama, records, "--output", out, reward=LEXICAL)
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=120)
    lines = out.read_text().splitlines(keepends=True)
    # A blank line in the middle loses nothing.
    out.write_text("".join(lines[:3]) + "\n" + "".join(lines[3:]))
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=120)
    assert len(read_out(out)) == 6
    # Anything else that is not an output line is an error naming it; nothing is changed.
    broken = "".join(lines[:2]) + "garbage\n" + "".join(lines[2:])
    out.write_text(broken)
    proc = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "line 3: not an output line" in proc.stderr, proc.stderr
    assert out.read_text() == broken


def test_a_second_run_on_the_same_output_exits_2_naming_the_first(tiny_llama, tmp_path):
    records = write_records(tmp_path / "in.jsonl", n=150)  # 20 ms a reward call: 20 s or more
    out = tmp_path / "out.jsonl"
    command, env = cli(tiny_llama, records, "--output", out, "--batch", "1")
    first = subprocess.Popen(command, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not out.exists() or not out.read_text():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
        assert second.returncode == 2, second.stderr
        assert f"being written by another run (process {first.pid}" in second.stderr
        assert first.poll() is None
    finally:
        first.kill()
        first.wait()
    # The lock ends with its process, however it ends.
    stars_cpp.dataset.lock_output(out).close()


def test_a_full_queue_is_waited_for_not_recorded(tiny_llama, tmp_path):
    records = write_records(tmp_path / "in.jsonl", n=20)
    engine = stars_cpp.Engine(str(tiny_llama), stars_cpp.rewards.lexical_diversity, n_ctx=4096,
                              max_queue=2)
    lines = list(stars_cpp.run_dataset(records, tmp_path / "out.jsonl", engine=engine,
                                       params=PARAMS, batch=8, quiet=True))
    assert len(lines) == 20 and not [line for line in lines if "error" in line]


def test_every_setting_that_changes_outputs_is_checked_on_resume(tiny_llama, tmp_path):
    records = write_records(tmp_path / "in.jsonl", n=2)
    out = tmp_path / "out.jsonl"
    command, env = cli(tiny_llama, records, "--output", out, reward=LEXICAL)
    subprocess.run(command, env=env, check=True, cwd=tmp_path, timeout=120)
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["settings"]["kv_layout"] == "isolated" and "judge_question" in meta["settings"]
    for flag, value, change in [("--kv-layout", "shared", "'isolated' -> 'shared'"),
                                ("--sampling", "host", "'auto' -> 'host'"),
                                ("--kv-type", "f32", "'f16' -> 'f32'")]:
        proc = subprocess.run([*command, flag, value], env=env, cwd=tmp_path,
                              capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        name = flag[2:].replace("-", "_")
        assert f"settings.{name}: {change}" in proc.stderr, proc.stderr
    # What cannot change a text may change: the batch, the threads.
    subprocess.run([*command, "--batch", "1", "--n-threads", "1"], env=env, check=True,
                   cwd=tmp_path, timeout=120)
