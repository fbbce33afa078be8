"""The Python API's contract: validation, reward errors, interop, threads, interrupts, stream."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import tempfile
import threading
import time

import llama_cpp
import pytest
from deterministic_rewards import hash_reward

import stars_cpp

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def engine(tiny_llama):
    return stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=2048)


def works(engine) -> None:
    result = engine.generate(PROMPT, segment_tokens=4, max_tokens=8, seed=1)
    assert len(result.tokens) == 8 and result.reward is not None


@pytest.mark.parametrize(
    "params,name",
    [
        ({"segment_tokens": 0}, "segment_tokens"),
        ({"candidates": 0}, "candidates"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"min_p": -1.0}, "min_p"),
        ({"top_k": -2}, "top_k"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"alpha": 1.5}, "alpha"),
        ({"beta": 0.0}, "beta"),
        ({"acceptance": "maybe"}, "acceptance"),
        ({"threshold": "high"}, "threshold"),
        ({"threshold": None}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"stop": 3}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"candidates": "4"}, "candidates"),
        ({"segment_token": 4}, "segment_token"),
        ({"target_attempts": 0.5}, "target_attempts"),
        ({"beta": "hot"}, "beta"),
        ({"beta": -1.0}, "beta"),
        ({"width": "wide"}, "width"),
        ({"candidates": 300}, "candidates"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(engine, params, name):
    with pytest.raises(ValueError, match=name):
        engine.generate(PROMPT, **params)
    works(engine)


def test_unknown_mode_and_missing_reward(engine, tiny_llama):
    with pytest.raises(ValueError, match="mode"):
        engine.generate(PROMPT, mode="beam")
    no_reward = stars_cpp.Engine(str(tiny_llama), n_ctx=512)
    for mode in ("stars", "best_of_n"):
        with pytest.raises(ValueError, match="needs a reward"):
            no_reward.generate(PROMPT, mode=mode)
    assert len(no_reward.generate(PROMPT, mode="plain", max_tokens=3).tokens) == 3
    works(engine)


@pytest.mark.parametrize("prompt", [42, [1, 2], [], [[{"role": "user"}]], [{"role": "user"}]])
def test_bad_prompts(engine, prompt):
    with pytest.raises(ValueError, match="prompt"):
        engine.generate(prompt)
    works(engine)


class BoomError(RuntimeError):
    pass


class Unfloatable:
    def __repr__(self) -> str:
        return "<unfloatable>"

    def __float__(self) -> float:
        raise ArithmeticError("no float today")


@pytest.mark.parametrize(
    "reward,error,match",
    [
        (lambda p, r: (_ for _ in ()).throw(BoomError("reward exploded")), BoomError,
         "reward exploded"),
        (lambda p, r: [float("nan")] * len(r), stars_cpp.RewardError, "non-finite"),
        (lambda p, r: [math.inf] * len(r), stars_cpp.RewardError, "non-finite"),
        (lambda p, r: [0.5] * (len(r) + 1), stars_cpp.RewardError, "values for"),
        (lambda p, r: [0.5], stars_cpp.RewardError, "values for"),
        (lambda p, r: ["high"] * len(r), stars_cpp.RewardError,
         r"value 0 \('high'\) is not a float"),
        (lambda p, r: [0.5] * (len(r) - 1) + [Unfloatable()], stars_cpp.RewardError,
         r"value \d+ \(<unfloatable>\) is not a float: .*no float today"),
        (lambda p, r: None, stars_cpp.RewardError, "sequence of floats.*NoneType"),
    ],
)
def test_bad_reward_callables(tiny_llama, reward, error, match):
    calls = {"n": 0}

    def switchable(prompts, responses):
        # Misbehaves on the round's joint call and on the retry of each prompt alone (a failure of
        # the joint call only is retried and recovers: test_lifecycle.py).
        calls["n"] += 1
        return reward(prompts, responses) if calls["n"] <= 3 else hash_reward(prompts, responses)

    engine = stars_cpp.Engine(str(tiny_llama), switchable, n_ctx=1024)
    with pytest.raises(error, match=match):
        engine.generate([PROMPT, "The cat"], segment_tokens=4, max_tokens=12, seed=1)
    # The same engine carries on, and gives what a fresh engine gives.
    again = engine.generate(PROMPT, segment_tokens=4, max_tokens=12, seed=1)
    fresh = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=1024).generate(
        PROMPT, segment_tokens=4, max_tokens=12, seed=1)
    assert list(again.tokens) == list(fresh.tokens)


def test_reward_sees_prompts_and_responses(tiny_llama):
    seen = []

    def reward(prompts, responses):
        seen.append((list(prompts), list(responses)))
        return [float(len(r)) for r in responses]

    engine = stars_cpp.Engine(str(tiny_llama), reward, n_ctx=1024)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    result = engine.generate([PROMPT, chat], segment_tokens=4, candidates=2, max_tokens=8,
                             threshold=1.0, seed=3, width="fixed")
    prompts, responses = seen[0]
    # First round at a float threshold: r(x, empty) rows, then the 2 candidates (a fixed
    # width); the prompt text is the user's own.
    assert prompts == [PROMPT, PROMPT, PROMPT, "Hi there", "Hi there", "Hi there"]
    assert responses[0] == "" and responses[3] == ""
    assert len(seen) == result[0].stats.reward_calls


def test_chat_prompt_uses_the_chat_template(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), n_ctx=512)
    chat = [{"role": "user", "content": "Hi there"}]
    rendered = engine.model.apply_chat_template([("user", "Hi there")])
    assert "<|im_start|>user\nHi there<|im_end|>" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")
    result = engine.generate(chat, mode="plain", max_tokens=4, seed=1)
    assert result.stats.prompt_tokens == len(engine.model.tokenize(rendered, True, True))


@pytest.mark.real
def test_engine_from_llama_cpp_llama_on_smollm2(smollm2):
    llm = llama_cpp.Llama(model_path=str(smollm2), n_ctx=512, verbose=False)
    engine = stars_cpp.Engine(llm, hash_reward, n_ctx=1024)
    assert not engine.model.owned
    # A fixed width: the adaptive one follows measured timings, and on a quantized model a
    # different width can change the logits' last bits (docs/stars.md, "Attempts, keys and rounds").
    params = dict(segment_tokens=8, max_tokens=24, seed=4, width="fixed")
    result = engine.generate([{"role": "user", "content": "Name a fruit."}], **params)
    assert result.text and len(result.tokens) <= 24
    assert result.reward is not None
    # Same weights, same tokens as loading the file.
    by_path = stars_cpp.Engine(str(smollm2), hash_reward, n_ctx=1024).generate(
        [{"role": "user", "content": "Name a fruit."}], **params)
    assert list(by_path.tokens) == list(result.tokens)
    del llm  # the engine keeps the Llama alive
    assert engine.generate("Hello", mode="plain", max_tokens=4, seed=1).tokens


def test_a_llama_closed_under_an_engine_keeps_its_weights_until_the_engine_closes(tiny_llama):
    # llm.close() during a generate freed the weights under the loop thread (a segfault), and
    # a generate after it read freed memory.
    llm = llama_cpp.Llama(model_path=str(tiny_llama), n_ctx=256, verbose=False)
    scoring = threading.Event()

    def reward(prompts, responses):
        scoring.set()
        time.sleep(0.02)
        return [float(len(r) % 3) for r in responses]

    engine = stars_cpp.Engine(llm, reward, n_ctx=256)
    results = []
    worker = threading.Thread(target=lambda: results.append(engine.generate(
        "Hello", segment_tokens=4, max_tokens=16, seed=1)))
    worker.start()
    assert scoring.wait(60)
    llm.close()  # mid-generate
    worker.join(120)
    assert len(results[0].tokens) == 16
    assert engine.generate("Hello", mode="plain", max_tokens=2).tokens  # still usable
    assert llm._model.model is not None
    engine.close()
    assert llm._model.model is None  # freed with its last borrower


@pytest.mark.parametrize("name", ["max_tokens", "segment_tokens", "candidates", "top_k"])
def test_huge_integers_raise_parameter_error(engine, name):
    # 2**40 was nanobind's TypeError ("incompatible function arguments"), naming nothing.
    with pytest.raises(stars_cpp.ParameterError, match=f"{name} must fit a 32-bit integer"):
        engine.generate(PROMPT, **{name: 2**40})


def test_eight_threads_share_one_engine(engine):
    results, errors = {}, []

    # The 8 calls share the engine loop's batches. A fixed width keeps every round 4 rows wide:
    # an adaptive round of 1 row decodes through llama.cpp's 1-row CPU kernel, which rounds
    # differently from a batch of rows and can flip a near-tied draw against the serial run.
    params = dict(segment_tokens=4, max_tokens=12, width="fixed")

    def run(i):
        try:
            results[i] = engine.generate(f"{PROMPT} {i}", seed=i, **params)
        except Exception as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == list(range(8))
    for i, result in results.items():
        assert len(result.tokens) == 12
        serial = engine.generate(f"{PROMPT} {i}", seed=i, **params)
        assert list(serial.tokens) == list(result.tokens)


def test_decoding_releases_the_gil(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), n_ctx=4096)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    start = time.perf_counter()
    engine.generate(["x"] * 16, mode="plain", max_tokens=200, seed=1)
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    during = [t for t in ticks if start <= t <= start + elapsed]
    # With the GIL held for the whole call the ticker could not run at all.
    assert len(during) > 10


# The child owns its signal handling: a process started in the background by a non-interactive
# shell (as CI may start the suite) inherits SIGINT ignored, and Python then installs no
# KeyboardInterrupt handler. That, not timing, made the in-process version of this test fail on
# fresh clones.
INTERRUPT_CHILD = """
import json, signal, sys, time
import stars_cpp

signal.signal(signal.SIGINT, signal.default_int_handler)
engine = stars_cpp.Engine(sys.argv[1], n_ctx=70000)
announced = []

def on_segment(index, segment):
    if not announced:
        announced.append(True)
        print("decoding", flush=True)

report = {"interrupted": False}
try:
    # The tiny model never ends by itself: 32 x 2000 tokens take about 35 s on 2 cores.
    engine.generate(["x"] * 32, mode="plain", max_tokens=2000, seed=1, on_segment=on_segment)
except KeyboardInterrupt:
    report["interrupted"] = True
    report["caught_at"] = time.monotonic()
report["metrics"] = engine.metrics()
report["after"] = len(engine.generate("Hello", mode="plain", max_tokens=5, seed=1).tokens)
print(json.dumps(report), flush=True)
"""


@pytest.mark.slow
def test_keyboard_interrupt_stops_and_leaves_the_engine_usable(tiny_llama):
    child = subprocess.Popen([sys.executable, "-c", INTERRUPT_CHILD, str(tiny_llama)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=tempfile.gettempdir())
    try:
        # The signal goes out once decoding is under way, not after a fixed delay that a slow
        # start or a loaded machine can outrun.
        assert child.stdout.readline().strip() == "decoding", child.stderr.read()
        sent_at = time.monotonic()  # CLOCK_MONOTONIC: one clock for both processes
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["interrupted"], "generate ended before the interrupt reached it"
    # The interrupt lands within a decode step, not at the end of 64,000 tokens.
    assert report["caught_at"] - sent_at < 5
    # Every request of the interrupted call was cancelled, and the engine still generates.
    assert report["metrics"]["requests_active"] == 0
    assert report["metrics"]["requests_cancelled"] == 32
    assert report["after"] == 5


def test_stream_yields_the_segments_of_generate(engine):
    params = dict(segment_tokens=4, max_tokens=18, seed=12)
    streamed = list(engine.stream(PROMPT, **params))
    result = engine.generate(PROMPT, **params)
    assert [s.text for s in streamed] == [s.text for s in result.segments]
    assert "".join(s.text for s in streamed) == result.text
    assert [list(s.tokens) for s in streamed] == [list(s.tokens) for s in result.segments]


@pytest.mark.parametrize("mode", ["stars", "plain"])
def test_on_segment_sees_every_segment_of_a_batch(engine, mode):
    seen: list[tuple[int, str]] = []
    prompts = [PROMPT, "The cat sat", "Hello"]
    results = engine.generate(prompts, mode=mode, segment_tokens=4, max_tokens=12, seed=3,
                              on_segment=lambda i, segment: seen.append((i, segment.text)))
    for i, result in enumerate(results):
        assert [text for j, text in seen if j == i] == [s.text for s in result.segments]
        assert result.segments


def test_on_segment_error_stops_the_generation(engine):
    def fail(index, segment):
        raise BoomError(f"stop at {index}")

    with pytest.raises(BoomError, match="stop at 0"):
        engine.generate(PROMPT, segment_tokens=4, max_tokens=40, seed=3, on_segment=fail)
    works(engine)


def test_stream_closed_early_frees_the_engine(engine):
    stream = engine.stream(PROMPT, segment_tokens=2, max_tokens=200, seed=1)
    first = next(stream)
    assert first.tokens
    stream.close()
    works(engine)


def test_stream_raises_reward_errors(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), lambda p, r: [math.nan] * len(r), n_ctx=512)
    with pytest.raises(stars_cpp.RewardError):
        list(engine.stream(PROMPT, max_tokens=8))


def test_generate_one_shot(tiny_llama):
    result = stars_cpp.generate(PROMPT, model=str(tiny_llama), reward=hash_reward,
                                segment_tokens=4, max_tokens=8, seed=2)
    assert isinstance(result, stars_cpp.Result)
    assert len(result.tokens) == 8
    batch = stars_cpp.generate([PROMPT], model=str(tiny_llama), mode="plain", max_tokens=3)
    assert isinstance(batch, list) and len(batch) == 1
