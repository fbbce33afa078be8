"""Stop strings are matched on the whole response, across segment boundaries, in every mode."""

from __future__ import annotations

import pytest
from deterministic_rewards import RecordingReward, hash_reward

import stars_cpp

# Every test here holds for host and for backend sampling.
pytestmark = pytest.mark.usefixtures("each_sampling")

PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def hash_engine(tiny_llama):
    return stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=4096)


def spanning_stop(result) -> tuple[str, int]:
    """A stop string of the last 2 characters of one segment and the first 2 of the next, whose
    first occurrence in the text is at that boundary; and where the text must end."""
    at = 0
    for left, right in zip(result.segments, result.segments[1:]):
        at += len(left.text)
        if len(left.text) >= 2 and len(right.text) >= 2:
            stop = left.text[-2:] + right.text[:2]
            if result.text.index(stop) == at - 2:
                return stop, at - 2
    raise AssertionError("no usable segment boundary")


def check_consistent(result, stop: str) -> None:
    assert result.finish_reason == "stop"
    assert stop not in result.text
    assert "".join(s.text for s in result.segments) == result.text
    assert sum(len(s.tokens) for s in result.segments) == len(result.tokens)
    s = result.stats
    assert s.tokens_accepted == len(result.tokens)
    assert s.prompt_tokens + s.tokens_accepted - 1 <= s.policy_tokens_decoded
    assert s.policy_tokens_decoded <= s.prompt_tokens + s.policy_tokens_sampled
    assert s.tokens_wasted == s.policy_tokens_sampled - s.tokens_accepted


@pytest.mark.parametrize("mode", ["stars", "plain"])
def test_a_stop_string_across_a_segment_boundary(hash_engine, tiny_llama, mode):
    params = dict(mode=mode, segment_tokens=4, candidates=2, threshold=0.6, max_tokens=48,
                  seed=4)
    free = hash_engine.generate(PROMPT, **params)
    stop, end = spanning_stop(free)
    shown: list[str] = []
    stopped = hash_engine.generate(PROMPT, stop=["@@never@@", stop],
                                   on_segment=lambda i, seg: shown.append(seg.text), **params)
    check_consistent(stopped, stop)
    assert stopped.text == free.text[:end]
    # Streamed segments never showed what the stop string later took back.
    assert "".join(shown) == stopped.text
    # The tokens are the free run's, up to the last one that starts before the stop string.
    assert list(stopped.tokens) == list(free.tokens[: len(stopped.tokens)])
    assert len(stopped.tokens) < len(free.tokens)


def test_a_stop_string_inside_a_best_of_n_response(tiny_llama):
    recording = RecordingReward()
    scored = recording.calls
    engine = stars_cpp.Engine(str(tiny_llama), recording, n_ctx=4096)
    params = dict(mode="best_of_n", candidates=3, max_tokens=24, seed=6)
    engine.generate(PROMPT, **params)
    free = scored.pop()
    stop = free[0][10:14]  # inside candidate 0, across its tokens
    assert free[0].index(stop) == 10
    scored.clear()
    result = engine.generate(PROMPT, stop=stop, **params)
    responses = scored.pop()
    assert responses[0] == free[0][:10]
    assert all(stop not in r for r in responses)
    assert result.text in responses
    assert result.reward == max(hash_reward([PROMPT] * 3, responses))
    if result.text == responses[0]:
        check_consistent(result, stop)


def test_a_stop_string_held_back_then_not_completed(hash_engine):
    # The end of a segment looks like the start of a stop string that never completes: it is
    # held back for a segment, then shown, and the text is the free run's.
    params = dict(mode="plain", segment_tokens=4, max_tokens=32, seed=4)
    free = hash_engine.generate(PROMPT, **params)
    first = free.segments[0].text
    stop = first[-1] + "\x00never"
    stopped = hash_engine.generate(PROMPT, stop=stop, **params)
    assert stopped.text == free.text and stopped.finish_reason == "length"
    assert stopped.segments[0].text == first[:-1]
    assert "".join(s.text for s in stopped.segments) == free.text
