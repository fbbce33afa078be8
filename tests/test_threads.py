"""Several threads on one standalone reward, and on a reward an Engine is using.

Before, a standalone GGUF reward called from two threads decoded in one llama context from both
at once with the GIL released (a data race on the KV cache and the batch). Every public call of a
GGUF reward now holds the reward's own lock. pytest's faulthandler plugin is on, so a crash
prints every thread's stack.
"""

from __future__ import annotations

import faulthandler
import os
import threading

import pytest

import stars_cpp

TINY_YES_NO = dict(yes=" yes", no=" no")
PROMPTS = [f"question {i}: what is {i} plus {i}?" for i in range(6)]
RESPONSES = [f"it is {2 * i}, I think" for i in range(6)]


def _hammer(reward, n_threads: int, calls: int) -> tuple[dict, list]:
    results, errors = {}, []

    def run(t):
        try:
            for c in range(calls):
                k = (t + c) % len(PROMPTS)
                rows = (PROMPTS[k:] + PROMPTS[:k], RESPONSES[k:] + RESPONSES[:k])
                results[(t, c)] = (k, reward(*rows))
        except Exception as error:  # collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors


@pytest.fixture(autouse=True)
def _faulthandler():
    was = faulthandler.is_enabled()
    faulthandler.enable()
    yield
    if not was:
        faulthandler.disable()


@pytest.mark.parametrize("kind", ["judge", "classifier"])
def test_four_threads_on_one_standalone_reward(kind, tiny_llama, tiny_bert):
    reward = (stars_cpp.JudgeReward(str(tiny_llama), **TINY_YES_NO) if kind == "judge"
              else stars_cpp.ClassifierReward(str(tiny_bert), label=1))
    serial = reward(PROMPTS, RESPONSES)
    results, errors = _hammer(reward, n_threads=4, calls=5)
    assert not errors
    assert len(results) == 20
    for k, scores in results.values():
        # Rotated inputs, rotated scores: each call saw only its own rows.
        assert scores == pytest.approx(serial[k:] + serial[:k], abs=1e-5)


def test_standalone_calls_while_an_engine_uses_the_reward(tiny_llama):
    judge = stars_cpp.JudgeReward(str(tiny_llama), **TINY_YES_NO)
    engine = stars_cpp.Engine(str(tiny_llama), judge, n_ctx=2048)
    serial = judge(PROMPTS, RESPONSES)
    outcome = {}

    def generate():
        outcome["results"] = engine.generate([f"tell me about {i}" for i in range(4)],
                                             mode="stars", max_tokens=16, segment_tokens=4, seed=2)

    gen = threading.Thread(target=generate)
    gen.start()
    results, errors = _hammer(judge, n_threads=4, calls=3)
    gen.join(timeout=120)
    assert not errors
    assert [len(r.tokens) for r in outcome["results"]] == [16] * 4
    for k, scores in results.values():
        # The engine's trunks hold cells meanwhile, and F32 logits move by ~1e-6 with where a
        # row's cells sit; any cross-talk between rows would move them by far more.
        assert scores == pytest.approx(serial[k:] + serial[:k], abs=1e-3)


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_host_sampling_starts_its_threads_once(tiny_llama):
    # Before, every decode step of 8 or more candidates started and joined new std::threads.
    def reward(prompts, responses):
        return [float(len(r) % 7) for r in responses]

    def run(n_threads):
        engine = stars_cpp.Engine(str(tiny_llama), reward=reward, n_ctx=1024, n_threads=n_threads)
        kwargs = dict(mode="stars", candidates=12, segment_tokens=8, max_tokens=48, seed=5,
                      width="fixed")
        first = engine.generate(PROMPTS[:2], **kwargs)
        threads = _os_threads()
        steps = engine.metrics()["decode_calls"]
        second = engine.generate(PROMPTS[:2], **kwargs)
        assert engine.metrics()["decode_calls"] > steps + 10  # many more steps ...
        assert _os_threads() == threads  # ... and not one thread more
        return engine.metrics()["sampling_threads"], [r.text for r in first + second]

    started, texts = run(n_threads=2)
    assert started == 1  # the loop thread draws too
    alone, texts_alone = run(n_threads=1)
    assert alone == 0
    assert texts == texts_alone  # each candidate's chain is its own: the split changes nothing
