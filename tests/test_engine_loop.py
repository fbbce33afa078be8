"""The engine loop: requests with their own parameters join one loop, leave it on their own
(finished, failed, cancelled), and a callback that calls back into its own engine gets an error
instead of a deadlock. Tiny F32 model: numerics do not depend on the batch, so a request's
output alone and among others must be identical."""

from __future__ import annotations

import threading

import pytest
from deterministic_rewards import hash_reward
from request_outcome import Outcome

import stars_cpp

# Every test here holds for host and for backend sampling.
pytestmark = pytest.mark.usefixtures("each_sampling")

PROMPT = "Once upon a time"


def submit(engine, prompt=PROMPT, **params) -> tuple[int, Outcome]:
    outcome = Outcome()
    request_id = engine.submit(prompt, on_segment=outcome.on_segment,
                               on_result=outcome.on_result, on_error=outcome.on_error, **params)
    return request_id, outcome


def idle(engine) -> None:
    metrics = engine.metrics()
    assert metrics["sequences_in_use"] == 0 and metrics["cells_in_use"] == 0, metrics
    assert metrics["requests_active"] == 0 and metrics["requests_queued"] == 0, metrics


MIXED = [
    {"mode": "plain", "max_tokens": 10, "seed": 1},
    {"mode": "best_of_n", "candidates": 3, "max_tokens": 8, "seed": 2},
    {"mode": "stars", "segment_tokens": 4, "candidates": 2, "max_tokens": 12, "seed": 3,
     "width": "fixed"},
    {"mode": "stars", "segment_tokens": 3, "candidates": 4, "max_tokens": 9, "seed": 4,
     "threshold": 0.5, "width": "fixed"},
    {"mode": "plain", "max_tokens": 5, "temperature": 0.0},
]


def test_requests_with_their_own_parameters_match_each_alone(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=4096)
    alone = [engine.generate(f"{PROMPT} {i}", **p) for i, p in enumerate(MIXED)]
    outcomes = [submit(engine, f"{PROMPT} {i}", **p)[1] for i, p in enumerate(MIXED)]
    for expected, outcome in zip(alone, outcomes):
        outcome.wait()
        assert outcome.error is None
        assert list(outcome.result.tokens) == list(expected.tokens)
        assert [s.text for s in outcome.segments] == [s.text for s in expected.segments]
    metrics = engine.metrics()
    assert metrics["requests_finished"] == 2 * len(MIXED)
    # They ran together: some decode call held more than one request's tokens.
    assert metrics["decode_tokens"] > metrics["decode_calls"]
    idle(engine)


def test_cancel_frees_sequences_and_cells(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=8192)
    started, release = threading.Event(), threading.Event()

    def hold(outcome, segment):
        # The first segment holds the loop thread until every cancel is in.
        outcome.segments.append(segment)
        if not started.is_set():
            started.set()
            assert release.wait(60)

    outcomes = []
    for i in range(6):
        outcome = Outcome()
        outcome.on_segment = lambda segment, o=outcome: hold(o, segment)
        request_id = engine.submit(f"{PROMPT} {i}", on_segment=outcome.on_segment,
                                   on_result=outcome.on_result, on_error=outcome.on_error,
                                   segment_tokens=2, max_tokens=400, seed=i)
        outcomes.append((request_id, outcome))
    assert started.wait(60)
    for request_id, _ in outcomes:
        assert engine.cancel(request_id)
    release.set()
    for request_id, outcome in outcomes:
        outcome.wait()
        assert outcome.error is None
        assert outcome.result.finish_reason == "cancelled"
        assert len(outcome.result.tokens) < 400
        assert not engine.cancel(request_id)  # done: nothing to cancel
    idle(engine)
    assert engine.metrics()["requests_cancelled"] == 6
    assert len(engine.generate(PROMPT, max_tokens=8, seed=1).tokens) == 8


def test_a_raising_reward_fails_only_the_request_it_raises_for(tiny_llama):
    def reward(prompts, responses):
        if any("BOOM" in p for p in prompts):
            raise RuntimeError("reward exploded on BOOM")
        return hash_reward(prompts, responses)

    engine = stars_cpp.Engine(str(tiny_llama), reward, n_ctx=4096)
    expected = engine.generate(PROMPT, segment_tokens=4, max_tokens=16, seed=5, width="fixed")
    _, good = submit(engine, PROMPT, segment_tokens=4, max_tokens=16, seed=5, width="fixed")
    _, bad = submit(engine, "BOOM goes the prompt", segment_tokens=4, max_tokens=16, seed=5)
    assert isinstance(bad.wait().error, RuntimeError)
    assert "BOOM" in str(bad.error)
    assert good.wait().error is None
    assert list(good.result.tokens) == list(expected.tokens)
    idle(engine)
    assert engine.metrics()["requests_failed"] == 1


def test_reentrant_calls_raise_instead_of_deadlocking(tiny_llama):
    holder = {}

    def reward(prompts, responses):
        holder["engine"].generate(PROMPT, mode="plain", max_tokens=2)
        return hash_reward(prompts, responses)

    engine = stars_cpp.Engine(str(tiny_llama), reward, n_ctx=1024)
    holder["engine"] = engine
    with pytest.raises(stars_cpp.ReentrantCallError, match="called back into the Engine"):
        engine.generate(PROMPT, segment_tokens=4, max_tokens=8, seed=1)

    plain = stars_cpp.Engine(str(tiny_llama), None, n_ctx=1024)
    with pytest.raises(stars_cpp.ReentrantCallError):
        plain.generate(PROMPT, mode="plain", max_tokens=8,
                       on_segment=lambda i, s: plain.generate(PROMPT, mode="plain", max_tokens=1))
    with pytest.raises(stars_cpp.ReentrantCallError, match="closed from its own"):
        plain.generate(PROMPT, mode="plain", max_tokens=4, on_segment=lambda i, s: plain.close())
    # Both engines carry on.
    assert len(plain.generate(PROMPT, mode="plain", max_tokens=4).tokens) == 4
    idle(plain)


def test_max_queue_refuses_and_close_fails_what_waits(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=1024, max_queue=2)
    # Each request reserves 1000 of 1024 cells: one runs, the others wait in the queue.
    long = {"mode": "plain", "max_tokens": 990, "seed": 1}
    first_segment, release = threading.Event(), threading.Event()

    def hold(segment):
        # The first request's first segment holds the loop until the queue has been tried.
        if not first_segment.is_set():
            first_segment.set()
            assert release.wait(60)

    outcomes = []
    for i in range(3):
        outcome = Outcome()
        engine.submit(f"{PROMPT} {i}", on_segment=hold if i == 0 else outcome.on_segment,
                      on_result=outcome.on_result, on_error=outcome.on_error, **long)
        outcomes.append(outcome)
        if i == 0:
            assert first_segment.wait(60)  # admitted: the queue is empty again
    with pytest.raises(stars_cpp.QueueFullError, match="max_queue=2"):
        engine.submit(PROMPT, on_result=print, on_error=print, **long)
    assert engine.metrics()["requests_queued"] == 2
    release.set()
    engine.close()
    for outcome in outcomes:
        outcome.wait()
    for outcome in outcomes[1:]:
        assert isinstance(outcome.error, stars_cpp.EngineClosedError)
    with pytest.raises(stars_cpp.EngineClosedError):
        engine.generate(PROMPT, mode="plain", max_tokens=2)
    engine.close()  # idempotent


def test_submit_validates_before_queueing(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=256)
    with pytest.raises(stars_cpp.ParameterError, match="candidates"):
        engine.submit(PROMPT, on_result=print, on_error=print, candidates=0)
    with pytest.raises(stars_cpp.ContextLengthError, match="n_ctx=256"):
        engine.submit("word " * 300, on_result=print, on_error=print)
    with pytest.raises(stars_cpp.ParameterError, match="at least one message"):
        engine.submit([], on_result=print, on_error=print)
    assert engine.metrics()["requests_submitted"] == 0


def test_plain_text_does_not_depend_on_segment_boundaries(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), None, n_ctx=1024)
    texts = {k: engine.generate(PROMPT, mode="plain", segment_tokens=k, max_tokens=30,
                                seed=9).text for k in (1, 4, 7, 30)}
    assert len(set(texts.values())) == 1, texts


def test_plain_requests_join_a_running_round(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), None, n_ctx=4096)
    long = {"mode": "plain", "segment_tokens": 500, "max_tokens": 1500, "seed": 1}
    short = {"mode": "plain", "segment_tokens": 600, "max_tokens": 600, "seed": 2}
    alone_long = engine.generate(PROMPT, **long)
    alone_short = engine.generate("The cat", **short)
    _, first = submit(engine, PROMPT, **long)
    calls = engine.metrics()["decode_calls"]
    while engine.metrics()["decode_calls"] < calls + 20:
        assert not first.done.is_set(), "the long request ended before the second joined"
    _, second = submit(engine, "The cat", **short)
    first.wait(), second.wait()
    assert first.result.text == alone_long.text
    assert second.result.text == alone_short.text
    # It joined mid-round: its first segment ended with the running round (at most 480 steps
    # after it joined), where alone it is one segment of 600 tokens.
    assert len(alone_short.segments[0].tokens) == 600
    assert len(second.segments[0].tokens) < 500
    idle(engine)
