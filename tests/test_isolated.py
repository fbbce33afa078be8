"""Reproducible by construction: in the isolated KV layout a request's text depends only on the
model, the reward, its parameters, seed and key. Width, batch position, neighbours, processes and
load never change it. Checked on real quantized models (SmolLM2 Q4_1 and Gemma-3-270M Q4_K_M,
whose mix of Q4_K, Q5_0 and Q8_0 weights exercises every CPU matrix kernel), at the defaults,
while another process keeps both cores busy.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap

import pytest
from deterministic_rewards import hash_reward

import stars_cpp
from stars_cpp.models import gemma3_270m_path

SMOLLM2_PROMPTS = [[{"role": "user", "content": text}] for text in (
    "Write a haiku about the sea.", "Name three fruits.", "Why is the sky blue?",
    "Tell me a joke about cats.", "How do I boil an egg?", "Describe a rainy morning.")]
GEMMA_PROMPTS = ["The sea at night is", "My favourite fruit is", "The sky is blue because",
                 "Here is a joke about cats:", "To boil an egg, you", "On a rainy morning,"]
# The layout's guarantees do not depend on how selective STARS is: these tests run at every
# default but target_attempts, kept at 3 (the default is 4) so that the suite stays in budget.
TARGET = 3.0
PARAMS = dict(segment_tokens=8, max_tokens=24, seed=7, target_attempts=TARGET)


@pytest.fixture(scope="module")
def busy():
    """Two spinning processes: the tests run on a loaded machine, as CI and users' do. They are
    niced, so they take every idle moment of both cores and preempt the engine's threads now and
    then, without halving the speed of the suite."""
    spinners = [subprocess.Popen([sys.executable, "-c", "import os\nos.nice(19)\nwhile True: pass"])
                for _ in range(2)]
    yield
    for spinner in spinners:
        spinner.kill()
        spinner.wait()


@pytest.fixture(scope="module", params=["smollm2", "gemma"])
def model(request, smollm2):
    if request.param == "smollm2":
        return str(smollm2), SMOLLM2_PROMPTS
    return str(gemma3_270m_path()), GEMMA_PROMPTS


@pytest.fixture(scope="module")
def engine(model):
    path, _ = model
    return stars_cpp.Engine(path, hash_reward, n_ctx=1024)


def trace(result) -> list[tuple]:
    """Everything a segment decided: its text, tokens, attempts and rewards."""
    return [(s.text, list(s.tokens), s.attempts, list(s.rewards)) for s in result.segments]


def test_the_round_width_changes_no_segment(engine, model, busy):
    _, prompts = model
    reference = [trace(r) for r in engine.generate(prompts[:3], candidates=1, **PARAMS)]
    assert any(len(t) > 1 for t in reference)
    for n in (2, 4, 8):
        assert [trace(r) for r in engine.generate(prompts[:3], candidates=n, **PARAMS)] == \
            reference, f"candidates={n}"


@pytest.mark.parametrize("mode", ["plain", "best_of_n", "stars"])
def test_a_prompt_alone_equals_it_at_position_3_of_6(engine, model, mode, busy):
    _, prompts = model
    alone = engine.generate(prompts[3], mode=mode, **PARAMS)
    batch = engine.generate(prompts, mode=mode, **PARAMS)
    assert trace(batch[3]) == trace(alone)
    assert list(batch[3].tokens) == list(alone.tokens) and batch[3].text == alone.text


def test_an_affine_reward_changes_no_token(engine, model, busy):
    path, prompts = model
    affine = stars_cpp.Engine(path, lambda p, r: [7.5 * x - 3 for x in hash_reward(p, r)],
                              n_ctx=1024)
    for a, b in zip(engine.generate(prompts[:3], **PARAMS), affine.generate(prompts[:3], **PARAMS)):
        assert list(a.tokens) == list(b.tokens)


TWO_PROCESSES = """
import json, sys
import stars_cpp
from deterministic_rewards import hash_reward

prompts = json.loads(sys.argv[2])
engine = stars_cpp.Engine(sys.argv[1], hash_reward, n_ctx=1024)
print(json.dumps([r.text for r in engine.generate(prompts, **json.loads(sys.argv[3]))]))
"""


def test_two_processes_give_the_same_text(engine, model, busy):
    path, prompts = model
    env_path = str(__import__("pathlib").Path(__file__).parent)
    outputs = []
    for order in (prompts[:3], prompts[:3][::-1]):
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(TWO_PROCESSES), path, json.dumps(order),
             json.dumps(PARAMS)],
            capture_output=True, text=True, timeout=600, cwd=tempfile.gettempdir(),
            env={**__import__("os").environ, "PYTHONPATH": env_path})
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1][::-1]
    assert outputs[0] == [r.text for r in engine.generate(prompts[:3], **PARAMS)]


def test_the_self_judge_scores_a_text_the_same_beside_any_prompts(model, busy):
    path, prompts = model
    judge = stars_cpp.JudgeReward("policy")
    engine = stars_cpp.Engine(path, judge, n_ctx=1024)
    params = dict(max_tokens=16, segment_tokens=8, seed=3, target_attempts=TARGET)
    alone = engine.generate(prompts[1], **params)
    batch = engine.generate(prompts, **params)
    assert trace(batch[1]) == trace(alone)
    # Scored from scratch, a text's score does not depend on the rows scored with it either.
    texts = [p if isinstance(p, str) else p[0]["content"] for p in prompts]
    one = judge(texts[:1], [alone.text])
    many = judge(texts, [alone.text] * len(texts))
    assert many[0] == one[0]


TESTS = __import__("pathlib").Path(__file__).parent
RUN_FLAGS = ["--segment-tokens", "8", "--max-tokens", "16", "--seed", "7", "--target-attempts",
             str(TARGET), "--quiet"]


def run_env() -> dict:
    import os

    return {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def texts_by_id(path) -> dict[str, str]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len({line["id"] for line in lines}) == len(lines), "an id was written twice"
    assert not [line for line in lines if "error" in line]
    return {line["id"]: line["text"] for line in lines}


def test_a_dataset_gives_each_id_its_text_whatever_the_batch_resume_or_workers(
        model, busy, tmp_path, monkeypatch):
    from interrupted_runs import kill_9_after

    path, prompts = model
    key = "messages" if isinstance(prompts[0], list) else "prompt"
    records = tmp_path / "in.jsonl"
    records.write_text("".join(json.dumps({"id": f"r{i}", key: p}) + "\n"
                               for i, p in enumerate(prompts)))
    reward = "python:deterministic_rewards:hash_reward"

    def command(out, batch):
        return [sys.executable, "-m", "stars_cpp", "run", str(records), "--output", str(out),
                "--model", path, "--reward", reward, "--batch", str(batch), *RUN_FLAGS]

    whole = tmp_path / "b8.jsonl"
    subprocess.run(command(whole, 8), env=run_env(), check=True, cwd=tmp_path, timeout=600)
    expected = texts_by_id(whole)
    assert len(expected) == 6 and all(expected.values())

    # --batch 1, killed with -9 after its second record, then resumed.
    killed = tmp_path / "b1.jsonl"
    assert kill_9_after(command(killed, 1), run_env(), tmp_path, killed, 2) < 6
    subprocess.run(command(killed, 1), env=run_env(), check=True, cwd=tmp_path, timeout=600)
    assert texts_by_id(killed) == expected

    # Two Ray workers, four records in flight each.
    import ray

    from stars_cpp import ray as stars_ray

    monkeypatch.chdir(tmp_path)  # workers must import the installed package, not the source
    monkeypatch.setenv("PYTHONPATH", run_env()["PYTHONPATH"])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        lines = list(stars_ray.run(records, tmp_path / "ray.jsonl", model=path,
                                   engine_settings={"reward": reward}, workers=2, batch=4,
                                   quiet=True,
                                   params=dict(segment_tokens=8, max_tokens=16, seed=7,
                                               target_attempts=TARGET)))
    finally:
        ray.shutdown()
    assert len(lines) == 6
    assert texts_by_id(tmp_path / "ray.jsonl") == expected


def test_16_concurrent_server_requests_give_the_texts_each_gives_alone(model, busy):
    import http.client
    import socket
    import time
    from concurrent.futures import ThreadPoolExecutor

    path, _ = model
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stars_cpp", "serve", "--model", path, "--reward",
         "python:deterministic_rewards:hash_reward", "--port", str(port), "--n-ctx", "1024",
         "--log-level", "warning"],
        env=run_env(), cwd=tempfile.gettempdir(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)

    def post(i: int) -> str:
        body = {"prompt": f"Story number {i} begins", "max_tokens": 16, "segment_tokens": 8,
                "seed": 100 + i, "target_attempts": TARGET}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            conn.request("POST", "/v1/completions", body=json.dumps(body),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            assert response.status == 200, data
            return json.loads(data)["choices"][0]["text"]
        finally:
            conn.close()

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        alone = [post(i) for i in range(16)]
        with ThreadPoolExecutor(16) as pool:
            together = list(pool.map(post, range(16)))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert all(alone)
    assert together == alone, out[-2000:]
