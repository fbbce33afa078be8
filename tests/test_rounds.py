"""Rounds that waste nothing: attempt keys, prompt keys and the adaptive round width.

Attempt j of segment s of a prompt samples from (seed, prompt key, s, j), so the width of a
round is a cost decision only; a prompt's key comes from its tokens (or an explicit key), so its
result does not depend on the other prompts of the call.
"""

from __future__ import annotations

import math

import pytest
from deterministic_rewards import hash_reward

import stars_cpp

# Every test here holds for host and for backend sampling.
pytestmark = pytest.mark.usefixtures("each_sampling")

PROMPT = "Once upon a time"
OTHERS = ["The cat sat", "Hello there", "A dog ran", "We were", "It was late"]


def trace(result) -> list:
    return [(s.text, list(s.tokens), s.attempts, list(s.rewards), s.threshold, s.fallback)
            for s in result.segments]


@pytest.fixture(scope="module")
def hash_engine(tiny_llama):
    return stars_cpp.Engine(str(tiny_llama), hash_reward, n_ctx=4096)


@pytest.mark.parametrize("threshold", [0.75, "auto"])
@pytest.mark.parametrize("acceptance,beta", [("soft", 0.1), ("hard", 0.7), ("soft", "auto")])
def test_every_width_gives_the_same_segments(hash_engine, acceptance, beta, threshold):
    # Soft acceptance draws u from each attempt's key; hard makes fallbacks across rounds
    # likely; the auto threshold learns from the attempts considered. Either way the round
    # width must change nothing but the cost.
    params = dict(segment_tokens=4, max_attempts=8, threshold=threshold, acceptance=acceptance,
                  beta=beta, max_tokens=40, seed=31)
    runs = {(n, width): hash_engine.generate(PROMPT, candidates=n, width=width, **params)
            for n in (1, 2, 4, 8) for width in ("fixed", "adaptive")}
    reference = runs[(1, "fixed")]
    assert sum(s.attempts for s in reference.segments) > len(reference.segments), \
        "some segment should need more than one attempt"
    for key, result in runs.items():
        assert trace(result) == trace(reference), key
        assert result.text == reference.text, key
        assert list(result.tokens) == list(reference.tokens), key
    # Wider fixed rounds sample more (the candidates after an accepted one are waste).
    assert (runs[(8, "fixed")].stats.policy_tokens_sampled
            > runs[(1, "fixed")].stats.policy_tokens_sampled)


@pytest.mark.parametrize("mode", ["stars", "plain", "best_of_n"])
def test_a_prompt_alone_equals_the_same_prompt_in_a_batch(hash_engine, mode):
    params = dict(mode=mode, temperature=0.8, segment_tokens=4, candidates=3, threshold=0.6,
                  max_tokens=24, seed=2024)
    alone = hash_engine.generate(PROMPT, **params)
    batch = OTHERS[:3] + [PROMPT] + OTHERS[3:]  # position 3 of 6 different prompts
    results = hash_engine.generate(batch, **params)
    assert results[3].text == alone.text
    assert trace(results[3]) == trace(alone)
    # Two copies in one call differ from each other; the first is the prompt run alone.
    first, second = hash_engine.generate([PROMPT, "The cat sat", PROMPT], **params)[::2]
    assert first.text == alone.text
    assert second.text != first.text


def test_explicit_keys_decide_the_samples(hash_engine):
    params = dict(segment_tokens=4, candidates=2, threshold=0.6, max_tokens=16, seed=5)
    a = hash_engine.generate([PROMPT, "Hello there"], keys=["record-1", 7], **params)
    b = hash_engine.generate(["Hello there", PROMPT], keys=["7", "record-1"], **params)
    assert a[0].text == b[1].text and a[1].text == b[0].text  # an int key is its decimal str
    # The same prompt under two keys: two independent draws.
    c = hash_engine.generate([PROMPT, PROMPT], keys=["x", "y"], **params)
    assert c[0].text != c[1].text
    assert hash_engine.generate(PROMPT, keys=["x"], **params).text == c[0].text
    for bad in (["only one"], "xy", [1.5, 2], [True, False]):
        with pytest.raises(stars_cpp.ParameterError, match="keys"):
            hash_engine.generate([PROMPT, PROMPT], keys=bad, **params)


def test_accepting_everything_samples_one_candidate_after_the_first_round(hash_engine):
    n, k = 4, 4
    prompts = [PROMPT] + OTHERS
    results = hash_engine.generate(prompts, segment_tokens=k, candidates=n, threshold=-1.0,
                                   acceptance="hard", max_tokens=40, seed=3)
    for result in results:
        s = result.stats
        assert all(seg.attempts == 1 for seg in result.segments)
        # Only the first round, before any acceptance was seen, may be wide.
        assert s.policy_tokens_sampled <= s.tokens_accepted + (n - 1) * k
        assert s.rounds == len(result.segments) == 10
        assert s.mean_round_width <= (n + s.rounds - 1) / s.rounds + 1e-12


def test_a_hard_to_please_reward_widens_the_rounds(tiny_llama):
    # A constant reward, alpha = 1 and threshold = beta * ln 4: each attempt is accepted with
    # probability exp(-ln 4) = 1/4, and several candidates per round pay off.
    beta = 1.0
    engine = stars_cpp.Engine(str(tiny_llama), lambda p, r: [0.0] * len(r), n_ctx=4096)
    params = dict(segment_tokens=4, candidates=4, max_attempts=16, alpha=1.0, beta=beta,
                  threshold=beta * math.log(4), max_tokens=64, seed=8)
    adaptive = engine.generate([PROMPT] * 2, **params)
    fixed = engine.generate([PROMPT] * 2, width="fixed", **params)
    for a, f in zip(adaptive, fixed):
        assert a.stats.mean_round_width > 1
        assert trace(a) == trace(f)
        assert a.stats.mean_round_width <= f.stats.mean_round_width
    attempts = sum(s.attempts for r in adaptive for s in r.segments)
    accepted = sum(not s.fallback for r in adaptive for s in r.segments)
    assert 0.1 < accepted / attempts < 0.45  # about one in four


def test_round_stats_and_width_validation(hash_engine):
    result = hash_engine.generate(PROMPT, mode="plain", segment_tokens=4, max_tokens=10, seed=1)
    assert result.stats.rounds == 3 and result.stats.mean_round_width == 1.0
    best = hash_engine.generate(PROMPT, mode="best_of_n", candidates=5, max_tokens=6, seed=1)
    assert best.stats.rounds == 1 and best.stats.mean_round_width == 5.0
    with pytest.raises(stars_cpp.ParameterError, match="width"):
        hash_engine.generate(PROMPT, width="wide")
