"""The STARS engine's contract (docs/stars.md, docs/parameters.md), checked from its outputs."""

from __future__ import annotations

import math

import pytest
from deterministic_rewards import hash_reward

import stars_cpp

# Every test here holds for host and for backend sampling.
pytestmark = pytest.mark.usefixtures("each_sampling")

PROMPT = "Once upon a time"


def tau_at(t: int, r_x: float, tau_star: float, alpha: float, max_tokens: int) -> float:
    """The float threshold's schedule, written out independently of the engine."""
    r0 = (1 - alpha) * r_x + alpha * tau_star
    return min(tau_star, r0 + t * (tau_star - r0) / max_tokens)


@pytest.fixture(scope="module")
def hash_engine(tiny_llama):
    return stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=2048)


def test_hard_acceptance_clears_the_schedule(hash_engine):
    params = dict(segment_tokens=4, candidates=3, max_attempts=6, threshold=0.7, alpha=0.5,
                  acceptance="hard", max_tokens=40, seed=11)
    result = hash_engine.generate(PROMPT, **params)
    r_x = hash_reward([PROMPT], [""])[0]
    length, accepted, text = 0, 0, ""
    for segment in result.segments:
        length += len(segment.tokens)
        text += segment.text
        tau = tau_at(length, r_x, 0.7, 0.5, 40)
        assert segment.threshold == pytest.approx(tau, abs=1e-12)
        # The chosen candidate's reward is the reward of the response so far.
        chosen = max(segment.rewards) if segment.fallback else segment.rewards[-1]
        assert chosen == pytest.approx(hash_reward([PROMPT], [text])[0], abs=1e-12)
        if not segment.fallback:
            accepted += 1
            assert segment.rewards[-1] >= tau
            # Every candidate considered before the accepted one was below its threshold:
            # candidates of one segment share a length here (no end-of-generation).
            assert all(r < tau for r in segment.rewards[:-1])
    assert accepted >= 1
    assert result.text == text
    assert len(result.tokens) == 40


def test_fallback_takes_the_best_candidate(hash_engine):
    # An unreachable threshold: every segment falls back after max_attempts.
    result = hash_engine.generate(PROMPT, segment_tokens=4, candidates=4, max_attempts=6,
                                  threshold=5.0, acceptance="hard", max_tokens=16, seed=5)
    text = ""
    for segment in result.segments:
        assert segment.fallback
        assert segment.attempts == 6 and len(segment.rewards) == 6
        text += segment.text
        # The best of all six, across both rounds, is the one kept.
        assert hash_reward([PROMPT], [text])[0] == pytest.approx(max(segment.rewards), abs=1e-12)
    assert result.reward == pytest.approx(max(result.segments[-1].rewards), abs=1e-12)


def test_soft_acceptance_frequency(tiny_llama):
    # A constant reward and alpha = 1 make tau constant, so each considered candidate is a
    # Bernoulli(exp((R - tau) / beta)) draw from the engine's own generator.
    reward, tau, beta = 0.0, 0.5, 0.7
    engine = stars_cpp.Engine(str(tiny_llama), lambda p, r: [reward] * len(r), n_ctx=4096)
    results = engine.generate([PROMPT] * 4, segment_tokens=1, candidates=4, max_attempts=16,
                              threshold=tau, alpha=1.0, beta=beta, acceptance="soft",
                              max_tokens=300, seed=2024)
    trials = successes = 0
    for result in results:
        for segment in result.segments:
            trials += segment.attempts
            successes += 0 if segment.fallback else 1
    p = math.exp((reward - tau) / beta)
    sigma = math.sqrt(p * (1 - p) / trials)
    assert trials >= 2000
    assert abs(successes / trials - p) < 3 * sigma, (successes, trials, p)


@pytest.mark.parametrize("mode", ["plain", "best_of_n", "stars"])
@pytest.mark.parametrize("segment_tokens,max_tokens", [(4, 10), (16, 7), (3, 3), (5, 1)])
def test_max_tokens_is_never_exceeded(hash_engine, mode, segment_tokens, max_tokens):
    result = hash_engine.generate(PROMPT, mode=mode, segment_tokens=segment_tokens,
                                  candidates=2, max_tokens=max_tokens, seed=1)
    assert len(result.tokens) == max_tokens  # the tiny model never ends by itself
    assert result.finish_reason == "length"
    assert sum(len(s.tokens) for s in result.segments) == max_tokens


@pytest.mark.parametrize("mode", ["plain", "best_of_n", "stars"])
def test_end_of_generation_ends_the_response(tiny_llama_eog, mode):
    engine = stars_cpp.Engine(str(tiny_llama_eog), hash_reward, n_ctx=2048)
    results = engine.generate([PROMPT] * 6, mode=mode, segment_tokens=4, candidates=2,
                              max_tokens=200, seed=3)
    stopped = [r for r in results if r.finish_reason == "stop"]
    assert stopped, "an EOG-prone model should end some responses"
    for result in stopped:
        assert len(result.tokens) < 200
        assert "<|im_end|>" not in result.text and "<|endoftext|>" not in result.text


def test_stop_strings_end_the_response(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), n_ctx=1024)
    # One segment (K >= T), so the stopped run samples exactly what the free run sampled.
    free = engine.generate(PROMPT, mode="plain", segment_tokens=64, max_tokens=64, seed=9)
    stop = free.text[20:23]
    assert len(stop) == 3
    stopped = engine.generate(PROMPT, mode="plain", segment_tokens=64, max_tokens=64, seed=9,
                              stop=["@@never@@", stop])
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[: free.text.index(stop)]
    assert stop not in stopped.text
    assert len(stopped.tokens) < len(free.tokens)


def test_stop_string_in_stars_mode(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=1024)
    # Every first attempt passes, so the stopped run follows the free one up to the stop: a cut
    # candidate has another reward, which could change later decisions otherwise.
    params = dict(segment_tokens=8, max_tokens=48, seed=4, threshold=-1.0, acceptance="hard")
    free = engine.generate(PROMPT, **params)
    stop = free.segments[1].text[2:5]
    stopped = engine.generate(PROMPT, stop=stop, **params)
    assert stopped.finish_reason == "stop"
    assert stop not in stopped.text
    assert free.text.startswith(stopped.text)


def test_best_of_n_returns_the_highest_reward(tiny_llama):
    calls = []

    def recording_reward(prompts, responses):
        scores = hash_reward(prompts, responses)
        calls.append((list(responses), scores))
        return scores

    engine = stars_cpp.Engine(str(tiny_llama), recording_reward, n_ctx=2048)
    result = engine.generate(PROMPT, mode="best_of_n", candidates=6, max_tokens=12, seed=8)
    assert len(calls) == 1  # scored once
    responses, scores = calls[0]
    assert len(responses) == 6 and len(set(responses)) > 1
    best = max(range(6), key=lambda i: scores[i])
    assert result.text == responses[best]
    assert result.reward == pytest.approx(max(scores), abs=1e-12)
    assert list(result.segments[0].rewards) == pytest.approx(scores)


def test_same_seed_same_tokens_different_seed_different_text(hash_engine):
    params = dict(segment_tokens=4, candidates=3, max_tokens=24)
    a = hash_engine.generate(PROMPT, seed=123, **params)
    b = hash_engine.generate(PROMPT, seed=123, **params)
    c = hash_engine.generate(PROMPT, seed=124, **params)
    assert list(a.tokens) == list(b.tokens)
    assert [s.rewards for s in a.segments] == [s.rewards for s in b.segments]
    assert a.text != c.text
    # The engine's seed applies when a call gives none.
    seeded = stars_cpp.Engine(hash_engine.model, hash_reward, seed=77)
    assert list(seeded.generate(PROMPT, **params).tokens) == list(
        seeded.generate(PROMPT, **params).tokens)


@pytest.mark.parametrize("mode", ["plain", "best_of_n", "stars"])
def test_no_token_is_decoded_twice(hash_engine, mode):
    results = hash_engine.generate([PROMPT, "The cat sat"], mode=mode, segment_tokens=4,
                                   candidates=3, max_attempts=5, threshold=0.8, max_tokens=30,
                                   seed=6)
    for result in results:
        s = result.stats
        assert s.prompt_tokens + s.tokens_accepted - 1 <= s.policy_tokens_decoded
        assert s.policy_tokens_decoded <= s.prompt_tokens + s.policy_tokens_sampled
        assert s.tokens_wasted == s.policy_tokens_sampled - s.tokens_accepted
        assert s.tokens_accepted == len(result.tokens)
        if mode == "stars":
            # Exactly: each candidate decodes all its tokens but the last, and the trunk
            # decodes each accepted segment's last token once, except the final one's. The
            # first reward row of the call is r(x, empty), not a candidate.
            n_candidates = s.reward_rows - 1
            expected = (s.prompt_tokens + s.policy_tokens_sampled - n_candidates
                        + len(result.segments) - 1)
            assert s.policy_tokens_decoded == expected


def test_batch_equals_one_at_a_time(tiny_llama):
    prompts = [f"{w} upon a time" for w in
               ("Once", "Twice", "Hello", "The cat", "A dog", "She", "We were", "It")]
    engine = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=4096)
    params = dict(temperature=0.0, segment_tokens=4, candidates=2, max_attempts=4,
                  threshold=0.6, acceptance="hard", max_tokens=20, seed=1)
    batch = engine.generate(prompts, **params)
    single = [engine.generate(p, **params) for p in prompts]
    assert [r.text for r in batch] == [r.text for r in single]
    assert [[s.rewards for s in r.segments] for r in batch] == [
        [s.rewards for s in r.segments] for r in single]


def test_a_finished_prompt_does_not_stall_the_others(tiny_llama_eog):
    engine = stars_cpp.Engine(str(tiny_llama_eog), hash_reward, n_ctx=4096)
    results = engine.generate([PROMPT] * 8, mode="plain", max_tokens=100, seed=2)
    lengths = sorted(len(r.tokens) for r in results)
    assert lengths[0] < lengths[-1]
    assert all(r.finish_reason in ("stop", "length") for r in results)


def test_more_prompts_than_sequences_run_in_waves(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=8192)
    prompts = [f"prompt number {i}" for i in range(70)]
    results = engine.generate(prompts, segment_tokens=2, candidates=4, max_tokens=4, seed=3)
    assert len(results) == 70
    assert all(len(r.tokens) == 4 for r in results)


def test_small_context_with_many_sequences(tiny_llama):
    # llama.cpp aborts the process when n_seq_max exceeds its output rows (n_batch); a small
    # n_ctx with many prompts must still work.
    engine = stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=32)
    results = engine.generate(["hi"] * 20, segment_tokens=2, candidates=2, max_tokens=4, seed=1)
    assert [len(r.tokens) for r in results] == [4] * 20
