"""threshold="auto" and beta="auto": calibrated on the reward's own spread, per prompt, from the
attempts considered so far, so that STARS steers the same way whatever the reward's units."""

from __future__ import annotations

import pytest
from deterministic_rewards import RecordingReward, hash_reward

import stars_cpp

PROMPT = "Once upon a time"


def affine(a: float, b: float):
    return lambda prompts, responses: [a * r + b for r in hash_reward(prompts, responses)]


@pytest.mark.parametrize("acceptance", ["soft", "hard"])
def test_an_affine_change_of_the_reward_changes_nothing(tiny_llama, acceptance):
    params = dict(segment_tokens=4, acceptance=acceptance, max_tokens=48, seed=17)
    base = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=4096)
    scaled = stars_cpp.Engine(str(tiny_llama), affine(7.5, -3.0), n_ctx=4096)
    prompts = [PROMPT, "The cat sat", "Hello there"]
    for a, b in zip(base.generate(prompts, **params), scaled.generate(prompts, **params)):
        assert list(a.tokens) == list(b.tokens)
        assert [s.attempts for s in a.segments] == [s.attempts for s in b.segments]
        for sa, sb in zip(a.segments, b.segments):
            assert sb.rewards == pytest.approx([7.5 * r - 3.0 for r in sa.rewards], abs=1e-9)
            if sa.threshold is not None:
                assert sb.threshold == pytest.approx(7.5 * sa.threshold - 3.0, abs=1e-6)
        assert sum(s.attempts for s in a.segments) > len(a.segments)  # it does reject


def test_the_auto_threshold_follows_a_reward_that_grows_with_length(tiny_llama):
    # The reward is the response's length in characters: a threshold fixed at length 0 would
    # pass every later segment at its first attempt.
    engine = stars_cpp.Engine(str(tiny_llama), lambda p, r: [float(len(x)) for x in r],
                              n_ctx=4096)
    results = engine.generate([PROMPT, "The cat sat"], segment_tokens=4, max_tokens=64,
                              seed=5, acceptance="hard")
    for result in results:
        taus = [s.threshold for s in result.segments if s.threshold is not None]
        assert len(taus) >= 10
        assert taus[-1] > taus[0] + 20  # 15 segments of ~2-4 characters a token later
        later = result.segments[1:]
        assert sum(s.attempts for s in later) / len(later) > 1.3  # not collapsed to 1


def test_the_first_segment_keeps_the_best_of_its_warm_up(tiny_llama):
    recording = RecordingReward()
    engine = stars_cpp.Engine(str(tiny_llama), recording, n_ctx=4096)
    result = engine.generate(PROMPT, segment_tokens=4, candidates=1, target_attempts=3,
                             max_tokens=12, seed=2)
    first = result.segments[0]
    assert first.attempts == 3 and first.threshold is None and not first.fallback
    assert first.reward == max(first.rewards)
    # One candidate a round, none accepted.
    assert [len(c) for c in recording.calls[:3]] == [1, 1, 1]
    assert all(s.threshold is not None for s in result.segments[1:])


def test_target_attempts_sets_how_hard_stars_tries(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=4096)
    prompts = [f"{PROMPT} {i}" for i in range(6)]

    def mean_attempts(target: float) -> float:
        results = engine.generate(prompts, segment_tokens=2, target_attempts=target, alpha=1.0,
                                  max_attempts=32, max_tokens=60, seed=9)
        segments = [s for r in results for s in r.segments[1:]]  # after the warm-up
        return sum(s.attempts for s in segments) / len(segments)

    lenient, default, strict = mean_attempts(1.5), mean_attempts(3.0), mean_attempts(6.0)
    assert lenient < default < strict
    assert 1.1 < lenient < 2.2 and 2.0 < default < 4.5 and 3.5 < strict < 9.0
