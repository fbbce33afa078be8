"""`stars-cpp serve` as a user runs it: a real server subprocess on a free port of 127.0.0.1,
driven by the `openai` client and by raw HTTP. The tiny F32 model keeps numerics independent of
the batch, so a request's text alone and among 15 others must be identical."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TESTS = Path(__file__).parent
N_CTX = 8192


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tiny_llama, reward: str = "python:deterministic_rewards:boom_reward"
           ) -> tuple[subprocess.Popen, int]:
    """`stars-cpp serve` on the tiny model, once it answers /health."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stars_cpp", "serve", "--model", str(tiny_llama),
         "--reward", reward, "--port", str(port),
         "--n-ctx", str(N_CTX), "--max-queue", "64", "--log-level", "warning"],
        env=env, cwd=TESTS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            status, _ = get(port, "/health")
            if status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start: {proc.stdout.read()}")
        time.sleep(0.1)
    return proc, port


@pytest.fixture(scope="module")
def server(tiny_llama):
    proc, port = launch(tiny_llama)
    yield port
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("server did not stop on SIGTERM")
    # The one internal fault on purpose (the BOOM reward) is logged with its traceback; nothing
    # else is.
    assert out.count("Traceback") == out.count("request failed: RuntimeError: the reward"), out


def request(port: int, method: str, path: str, body: bytes | None = None,
            timeout: float = 120) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get(port: int, path: str) -> tuple[int, bytes]:
    return request(port, "GET", path)


def post(port: int, path: str, body: object) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, data = request(port, "POST", path, raw)
    return status, json.loads(data)


def stream_texts(port: int, path: str, body: dict) -> tuple[str, list[dict]]:
    """Sends a streamed request; returns the joined text of choice 0 and every chunk."""
    status, data = request(port, "POST", path, json.dumps({**body, "stream": True}).encode())
    assert status == 200, data
    chunks = []
    for line in data.decode().splitlines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            chunks.append(payload if payload == "[DONE]" else json.loads(payload))
    assert chunks[-1] == "[DONE]"
    text = "".join(
        (c["choices"][0].get("delta", {}).get("content") or c["choices"][0].get("text") or "")
        for c in chunks[:-1] if isinstance(c, dict) and c.get("choices"))
    return text, chunks


def metrics(port: int) -> dict[str, float]:
    status, data = get(port, "/metrics")
    assert status == 200
    out = {}
    for line in data.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def client(port: int) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)


CHAT = [{"role": "user", "content": "Tell me a story"}]


def test_openai_client_chat_completion_and_stream(server):
    c = client(server)
    response = c.chat.completions.create(model="tiny", messages=CHAT, max_tokens=12, seed=7)
    text = response.choices[0].message.content
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 12
    assert response.usage.model_extra["stars"]["tokens_accepted"] == 12
    chunks = list(c.chat.completions.create(model="tiny", messages=CHAT, max_tokens=12, seed=7,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    # One chunk per accepted segment (segment_tokens 16 by default: 12 tokens, one segment).
    assert sum(1 for ch in chunks if ch.choices and ch.choices[0].delta.content) == 1


def test_openai_client_completion_extra_body_n_and_seed(server):
    c = client(server)
    response = c.completions.create(
        model="tiny", prompt="Once upon a time", max_tokens=9, seed=3, n=2,
        extra_body={"mode": "stars", "segment_tokens": 3, "candidates": 2, "width": "fixed",
                    "threshold": 0.4, "return_trace": True})
    assert len(response.choices) == 2
    texts = [choice.text for choice in response.choices]
    assert texts[0] != texts[1]  # independent keys
    for choice in response.choices:
        trace = choice.model_extra["stars_trace"]
        assert len(trace["segments"]) == 3
        for segment in trace["segments"]:
            assert len(segment["tokens"]) == 3
            assert segment["threshold"] == pytest.approx(0.4) or segment["fallback"]
            # Rounds are 2 wide: attempts come in pairs until one clears 0.4.
            assert 1 <= segment["attempts"] <= 16
    best = c.completions.create(model="tiny", prompt="Once upon a time", max_tokens=6, seed=3,
                                extra_body={"mode": "best_of_n", "candidates": 3,
                                            "return_trace": True})
    segments = best.choices[0].model_extra["stars_trace"]["segments"]
    assert len(segments) == 1 and segments[0]["attempts"] == 3
    again = c.completions.create(
        model="tiny", prompt="Once upon a time", max_tokens=9, seed=3, n=2,
        extra_body={"mode": "stars", "segment_tokens": 3, "candidates": 2, "width": "fixed",
                    "threshold": 0.4})
    assert [choice.text for choice in again.choices] == texts


CONCURRENT = [
    {"mode": "plain", "max_tokens": 20},
    {"mode": "best_of_n", "candidates": 3, "max_tokens": 10},
    {"mode": "stars", "segment_tokens": 4, "candidates": 2, "max_tokens": 16, "width": "fixed"},
    {"mode": "stars", "segment_tokens": 6, "candidates": 4, "max_tokens": 18, "width": "fixed",
     "threshold": 0.6},
]


def concurrent_body(i: int) -> dict:
    return {"prompt": f"Request {i} says", "seed": 100 + i, **CONCURRENT[i % len(CONCURRENT)]}


def test_continuous_batching_matches_requests_alone(server):
    alone = []
    before = metrics(server)
    for i in range(16):
        alone.append(stream_texts(server, "/v1/completions", concurrent_body(i))[0])
    middle = metrics(server)
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(
            lambda i: stream_texts(server, "/v1/completions", concurrent_body(i))[0], range(16)))
    after = metrics(server)
    assert together == alone
    assert all(alone)

    def batch(a, b):
        return ((b["stars_decode_tokens_total"] - a["stars_decode_tokens_total"])
                / (b["stars_decode_calls_total"] - a["stars_decode_calls_total"]))

    # Requests sent together shared decode batches that requests sent one by one could not.
    assert batch(middle, after) > 1.0
    assert batch(middle, after) > 1.5 * batch(before, middle)


def health(port: int) -> dict:
    status, data = get(port, "/health")
    assert status == 200
    return json.loads(data)


def wait_idle(port: int) -> dict:
    deadline = time.monotonic() + 30
    while True:
        state = health(port)
        if state["requests_active"] == 0 and state["requests_queued"] == 0:
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


def test_closed_streams_cancel_and_free_their_cells(server):
    wait_idle(server)
    before = metrics(server)
    body = json.dumps({"prompt": "A long story", "max_tokens": 600, "segment_tokens": 2,
                       "stream": True, "seed": 1}).encode()

    def open_and_close(_):
        conn = http.client.HTTPConnection("127.0.0.1", server, timeout=60)
        conn.request("POST", "/v1/completions", body=body,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        while not response.fp.readline().startswith(b"data: "):
            pass
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(open_and_close, range(10)))
    state = wait_idle(server)
    assert state["sequences_in_use"] == 0 and state["cells_in_use"] == 0, state
    after = metrics(server)
    cancelled = (after['stars_requests_total{outcome="cancelled"}']
                 - before['stars_requests_total{outcome="cancelled"}'])
    assert cancelled == 10
    status, body = post(server, "/v1/completions", {"prompt": "Again", "max_tokens": 5})
    assert status == 200 and body["usage"]["completion_tokens"] == 5


BAD_TYPES = {
    "model": 5, "messages": "hello", "max_tokens": "ten", "max_completion_tokens": 1.5,
    "temperature": "hot", "top_p": [1], "seed": "s", "stop": 7, "n": "two", "stream": "yes",
    "stream_options": [], "mode": 3, "segment_tokens": "x", "candidates": 2.5,
    "max_attempts": {}, "threshold": "high", "alpha": "a", "beta": [0], "target_attempts": "t",
    "acceptance": 1, "width": True, "top_k": 0.5, "min_p": "m", "return_trace": "no",
    "key": [1],
}


def assert_error(status: int, body: dict, param: str | None = None, code: int = 400) -> None:
    assert status == code, body
    assert set(body["error"]) >= {"message", "type", "param", "code"}, body
    if param is not None:
        assert body["error"]["param"] == param, body


@pytest.mark.parametrize("field", sorted(BAD_TYPES))
def test_a_wrong_type_names_its_field(server, field):
    body = {"messages": CHAT, "max_tokens": 4, field: BAD_TYPES[field]}
    assert_error(*post(server, "/v1/chat/completions", body), param=field)


def test_bad_requests_get_openai_errors_and_the_server_goes_on(server):
    assert_error(*post(server, "/v1/chat/completions", b"{not json"))
    assert_error(*post(server, "/v1/chat/completions", {"messages": CHAT, "mode": "greedy"}),
                 param="mode")
    assert_error(*post(server, "/v1/chat/completions", {"messages": CHAT, "candidates": 0}),
                 param="candidates")
    assert_error(*post(server, "/v1/chat/completions", {"messages": []}), param="messages")
    assert_error(*post(server, "/v1/completions", {"prompt": ""}), param="prompt")
    assert_error(*post(server, "/v1/chat/completions", {"messages": CHAT, "colour": "red"}),
                 param="colour")
    assert_error(*post(server, "/v1/completions", {"prompt": "word " * (N_CTX + 100)}))
    assert_error(*post(server, "/v1/completions", {"prompt": "x", "max_tokens": 10**6}),
                 param="max_tokens")
    status, data = request(server, "POST", "/v1/completions", b"[" + b"1," * 5_000_000 + b"1]")
    assert status == 413 and "error" in json.loads(data)
    status, data = request(server, "POST", "/v1/completions", b"[" * 100_000 + b"]" * 100_000)
    assert status == 400 and "nested too deeply" in json.loads(data)["error"]["message"]
    status, body = post(server, "/v1/chat/completions", {"messages": CHAT, "max_tokens": 4})
    assert status == 200 and body["usage"]["completion_tokens"] == 4


def test_usage_counts_each_prompt_once_and_each_choice(server):
    one = [post(server, "/v1/completions", {"prompt": p, "max_tokens": 3, "mode": "plain"})[1]
           for p in ("Once", "Once upon a time there was")]
    sizes = [u["usage"]["prompt_tokens"] for u in one]
    assert sizes[0] < sizes[1]
    status, body = post(server, "/v1/completions",
                        {"prompt": ["Once", "Once upon a time there was"], "n": 3,
                         "max_tokens": 3, "mode": "plain"})
    assert status == 200 and len(body["choices"]) == 6
    usage = body["usage"]
    assert usage["prompt_tokens"] == sum(sizes) == usage["stars"]["prompt_tokens"]
    assert usage["completion_tokens"] == 18
    assert usage["total_tokens"] == sum(sizes) + 18


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=3),
    max_leaves=8)
FIELDS = sorted(set(BAD_TYPES) | {"prompt", "stream_options"})
SMALL = {"max_tokens": st.integers(-2, 8), "n": st.integers(-1, 3),
         "segment_tokens": st.integers(-1, 6), "candidates": st.integers(-1, 5)}


def body_strategy():
    value_of = {name: SMALL.get(name, JSON) for name in FIELDS}
    return st.fixed_dictionaries({}, optional={name: value_of[name] for name in FIELDS})


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(body=body_strategy(), chat=st.booleans())
def test_random_bodies_never_get_a_5xx(server, body, chat):
    body.setdefault("max_tokens", 4)
    raw = json.dumps(body, allow_nan=True).encode()
    status, data = request(server, "POST", "/v1/chat/completions" if chat else "/v1/completions",
                           raw)
    assert status < 500, data
    if status >= 400:
        assert "error" in json.loads(data)


def test_a_raising_reward_fails_its_own_request_only(server):
    results = {}

    def good(i):
        results[i] = post(server, "/v1/completions",
                          {"prompt": f"Fine prompt {i}", "max_tokens": 24, "segment_tokens": 4,
                           "seed": i})

    threads = [threading.Thread(target=good, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    status, body = post(server, "/v1/completions",
                        {"prompt": "BOOM", "max_tokens": 24, "segment_tokens": 4})
    for thread in threads:
        thread.join()
    assert_error(status, body, code=500)
    assert "exploded" in body["error"]["message"]
    for status, body in results.values():
        assert status == 200 and body["usage"]["completion_tokens"] == 24
    assert health(server)["status"] == "ok"


def test_a_reward_that_fails_only_on_shared_rounds_fails_no_request(server):
    # The joint call of a round raises; each request scored alone does not. Every request is
    # retried alone and succeeds (this used to abort the server with every client cut off).
    bodies = [{"prompt": f"SOLO prompt {i}", "max_tokens": 24, "segment_tokens": 4, "seed": i}
              for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda body: post(server, "/v1/completions", body), bodies))
    for status, body in replies:
        assert status == 200, body
        assert body["usage"]["completion_tokens"] == 24
    # Alone, each gives the same text: the retried scores are the request's own.
    for body, (_, reply) in zip(bodies, replies):
        status, alone = post(server, "/v1/completions", body)
        assert status == 200 and alone["choices"][0]["text"] == reply["choices"][0]["text"]
    assert health(server)["status"] == "ok"


def test_models_and_health(server):
    status, data = get(server, "/v1/models")
    assert status == 200 and json.loads(data)["data"][0]["id"] == "tiny-llama.gguf"
    names = metrics(server)
    for name in ("stars_queue_depth", "stars_kv_cells_in_use", "stars_sequences_in_use",
                 "stars_tokens_sampled_total", "stars_tokens_accepted_total",
                 "stars_round_width_mean", "stars_decode_batch_mean",
                 "stars_reward_seconds_total", 'stars_requests_total{outcome="finished"}'):
        assert name in names


def test_sigterm_ends_open_streams_saying_so_and_exits_0(tiny_llama):
    proc, port = launch(tiny_llama)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/v1/completions", body=json.dumps(
        {"prompt": "Once", "max_tokens": 4000, "mode": "plain", "stream": True}),
        headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    first = response.readline()
    assert first.startswith(b"data: ")
    proc.terminate()
    rest = response.read().decode()
    conn.close()
    events = [line[len("data: "):] for line in rest.splitlines() if line.startswith("data: ")]
    # Cut short, and told so: an OpenAI error event, then [DONE]; not a silent end.
    assert events[-1] == "[DONE]", rest[-500:]
    error = json.loads(events[-2])["error"]
    assert error["type"] == "server_closing" and "shutting down" in error["message"]
    assert proc.wait(timeout=60) == 0


def test_a_probe_reward_serves(tiny_llama, tmp_path):
    """`serve --reward probe:PATH`: a probe on the tiny policy's last layer scores the rounds."""
    from tiny_models import LLAMA_HPARAMS

    from stars_cpp import _core

    n_embd, n_layer = int(LLAMA_HPARAMS["n_embd"]), int(LLAMA_HPARAMS["n_layer"])
    probe = tmp_path / "tiny.probe.gguf"
    _core.write_probe(str(probe), {
        "layer": n_layer, "mean": [0.0] * n_embd, "std": [1.0] * n_embd,
        "weight": [0.01 * (i % 7 - 3) for i in range(n_embd)], "bias": 0.0,
        "policy": _core.identify_policy(_core.Model.load(str(tiny_llama), 0))})
    proc, port = launch(tiny_llama, f"probe:{probe}")
    try:
        status, body = post(port, "/v1/completions", {
            "prompt": "Hello", "max_tokens": 8, "mode": "stars", "segment_tokens": 4,
            "seed": 1})
        assert status == 200, body
        assert body["usage"]["completion_tokens"] == 8
        assert body["usage"]["stars"]["reward_calls"] > 0
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
