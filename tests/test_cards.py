"""mode="cards" on SmolLM2: segments end where the policy's next-token entropy crosses
entropy_threshold (checked against a from-scratch pass of llama-cpp-python over the same
tokens), the cap holds, tokens add up, and the text does not depend on the width or the
requests beside it."""

from __future__ import annotations

import math

import numpy as np
import pytest

import stars_cpp
from stars_cpp.rewards import lexical_diversity

PROMPT = "The old lighthouse keeper opened the door and"
THRESHOLD = 2.5  # nats: SmolLM2's continuations cross it every few tokens
CAP = 8
# The engine decodes one token per step, the reference a whole prefill: on Q4_1 weights their
# logits differ in the last digits, so an entropy within this of the threshold may go either way.
MARGIN = 0.05

PARAMS = dict(mode="cards", entropy_threshold=THRESHOLD, segment_tokens=CAP, candidates=3,
              max_attempts=4, max_tokens=48, seed=11, threshold=0.5, temperature=0.8)


@pytest.fixture(scope="module")
def engine(smollm2):
    return stars_cpp.Engine(str(smollm2), lexical_diversity, n_ctx=1024, n_threads=2)


@pytest.fixture(scope="module")
def reference(smollm2):
    import llama_cpp

    return llama_cpp.Llama(str(smollm2), n_ctx=512, logits_all=True, n_threads=2, verbose=False)


def entropies(reference, tokens: list[int]) -> np.ndarray:
    """Entropy (nats) of the next-token distribution after each of `tokens`."""
    reference.reset()
    reference.eval(tokens)
    logits = np.asarray(reference.scores[: len(tokens)], dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)


def test_segments_end_where_the_entropy_crosses_the_threshold(engine, reference):
    result = engine.generate(PROMPT, **PARAMS)
    prompt = reference.tokenize(PROMPT.encode(), add_bos=True, special=False)
    assert len(prompt) == result.stats.prompt_tokens
    h = entropies(reference, prompt + list(result.tokens))
    ended_early = 0
    at = len(prompt)  # index of the segment's first token in prompt + response
    for i, segment in enumerate(result.segments):
        n = len(segment.tokens)
        assert 1 <= n <= CAP  # the cap holds
        # Inside a segment the policy stayed sure: every token but the last had an entropy
        # below the threshold after it.
        for j in range(at, at + n - 1):
            assert h[j] <= THRESHOLD + MARGIN, (i, j - at, h[j])
        last = i == len(result.segments) - 1
        if n < CAP and not last:
            assert h[at + n - 1] > THRESHOLD - MARGIN, (i, h[at + n - 1])
            ended_early += 1
        at += n
    assert ended_early >= 2, [len(s.tokens) for s in result.segments]
    s = result.stats
    assert s.tokens_accepted == len(result.tokens) == sum(len(g.tokens) for g in result.segments)
    assert s.tokens_wasted == s.policy_tokens_sampled - s.tokens_accepted
    assert "".join(g.text for g in result.segments) == result.text
    assert result.reward == pytest.approx(lexical_diversity([PROMPT], [result.text])[0])


def test_the_text_does_not_depend_on_width_or_neighbours(engine):
    alone = engine.generate(PROMPT, **{**PARAMS, "candidates": 1}).text
    wide = engine.generate(PROMPT, **{**PARAMS, "width": "fixed"}).text
    batch = engine.generate(["Once upon a time", PROMPT, "Rain fell on"], **PARAMS)
    assert alone == wide == batch[1].text


def test_entropy_threshold_is_checked(engine):
    with pytest.raises(stars_cpp.ParameterError, match="entropy_threshold"):
        engine.generate(PROMPT, mode="cards", entropy_threshold=0.0)


def test_no_threshold_rise_means_capped_segments(engine):
    result = engine.generate(PROMPT, **{**PARAMS, "entropy_threshold": math.log(49152) + 1})
    assert [len(s.tokens) for s in result.segments[:-1]] == [CAP] * (len(result.segments) - 1)
