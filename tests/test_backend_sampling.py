"""sampling="backend": candidates draw their tokens inside llama.cpp's compute graph (its
backend sampling API), which runs on the CPU backend as well. Same distribution as host
sampling, the same tokens when greedy, and a named fallback to the host when a request's sampler
chain has no backend form."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

import stars_cpp
from stars_cpp import _core

PROMPT = "the cat sat on the mat and the dog"
DRAWS = 2000


def _draws(tiny_llama, sampling: str) -> tuple[list[int], list]:
    """The first token of DRAWS plain requests with keys 0..DRAWS-1 (one prompt, T = 1)."""
    engine = stars_cpp.Engine(str(tiny_llama), n_ctx=2048, sampling=sampling)
    results = engine.generate([PROMPT] * DRAWS, mode="plain", max_tokens=1, temperature=1.0,
                              top_k=0, seed=11, keys=list(range(DRAWS)))
    return [r.tokens[0] for r in results], results


def _expected(tiny_llama) -> np.ndarray:
    """softmax of the prompt's next-token logits, read off a KvSession."""
    model = _core.Model.load(str(tiny_llama), 0)
    tokens = model.tokenize(PROMPT)
    session = _core.testing.KvSession(model, n_ctx=256)
    seq = session.acquire()
    n = len(tokens)
    [row] = session.decode(tokens, list(range(n)), [seq] * n, [False] * (n - 1) + [True])
    logits = session.logits(row).astype(np.float64)
    p = np.exp(logits - logits.max())
    return p / p.sum()


def _chi_square_p_ok(counts: Counter, p: np.ndarray, alpha_z: float = 3.09) -> tuple[float, float]:
    """Pearson's statistic over tokens expected 5+ times (the rest pooled) and its critical
    value at alpha = 1e-3 (Wilson-Hilferty)."""
    expected = p * DRAWS
    big = np.flatnonzero(expected >= 5)
    observed = [counts.get(int(t), 0) for t in big]
    rest_expected = DRAWS - expected[big].sum()
    rest_observed = DRAWS - sum(observed)
    stat = sum((o - e) ** 2 / e for o, e in zip(observed, expected[big]))
    bins = len(big)
    if rest_expected >= 5:
        stat += (rest_observed - rest_expected) ** 2 / rest_expected
        bins += 1
    df = bins - 1
    critical = df * (1 - 2 / (9 * df) + alpha_z * math.sqrt(2 / (9 * df))) ** 3
    return stat, critical


def test_backend_draws_follow_the_model_distribution(tiny_llama):
    p = _expected(tiny_llama)
    for sampling in ("backend", "host"):
        tokens, results = _draws(tiny_llama, sampling)
        on_backend = sum(r.stats.backend_tokens_sampled for r in results)
        assert on_backend == (DRAWS if sampling == "backend" else 0)
        stat, critical = _chi_square_p_ok(Counter(tokens), p)
        assert critical > 10  # enough bins for the test to mean something
        assert stat < critical, f"{sampling}: chi-square {stat:.1f} >= {critical:.1f}"
        # The same statistic against a distorted distribution (T = 1.5) is far out: the test
        # can tell distributions apart at this many draws.
        flat = p ** (1 / 1.5)
        assert _chi_square_p_ok(Counter(tokens), flat / flat.sum())[0] > 2 * critical


@pytest.mark.real
@pytest.mark.parametrize("mode", ["plain", "best_of_n", "stars"])
def test_greedy_gives_the_same_tokens(mode, tiny_llama, smollm2):
    def reward(prompts, responses):
        return [float(len(r) % 5) for r in responses]

    for path in (tiny_llama, smollm2):
        runs = {}
        for sampling in ("host", "backend"):
            engine = stars_cpp.Engine(str(path), reward if mode != "plain" else None,
                                      n_ctx=1024, sampling=sampling)
            runs[sampling] = engine.generate(["Name three fruits.", "hello there"], mode=mode,
                                             temperature=0.0, max_tokens=40, candidates=3,
                                             width="fixed", seed=1)
        assert [r.tokens for r in runs["backend"]] == [r.tokens for r in runs["host"]]
        # Every token after a round's first comes out of the graph.
        for r in runs["backend"]:
            assert 0 < r.stats.backend_tokens_sampled <= r.stats.policy_tokens_sampled
            if mode == "plain":
                assert r.stats.backend_tokens_sampled == r.stats.policy_tokens_sampled
            else:
                assert r.stats.policy_tokens_sampled - r.stats.backend_tokens_sampled >= \
                    r.stats.rounds
            assert r.stats.sampling_fallback == ""


def test_a_chain_without_backend_form_samples_on_the_host_and_says_why(tiny_llama):
    kwargs = dict(mode="stars", typical_p=0.9, max_tokens=24, seed=4, width="fixed")

    def reward(prompts, responses):
        return [float(len(r) % 3) for r in responses]

    backend = stars_cpp.Engine(str(tiny_llama), reward, n_ctx=512, sampling="backend")
    host = stars_cpp.Engine(str(tiny_llama), reward, n_ctx=512, sampling="host")
    [fallen] = backend.generate([PROMPT], **kwargs)
    [reference] = host.generate([PROMPT], **kwargs)
    assert "typical_p" in fallen.stats.sampling_fallback
    assert fallen.stats.backend_tokens_sampled == 0
    assert fallen.tokens == reference.tokens  # both on the host: the same chain, the same draws
    assert reference.stats.sampling_fallback == ""
    # The same engine still samples on the backend for a request that can.
    [other] = backend.generate([PROMPT], **{**kwargs, "typical_p": 1.0})
    assert other.stats.backend_tokens_sampled > 0 and other.stats.sampling_fallback == ""


def test_sampling_is_checked(tiny_llama):
    with pytest.raises(stars_cpp.ParameterError, match="sampling must be one of"):
        stars_cpp.Engine(str(tiny_llama), sampling="gpu")
    engine = stars_cpp.Engine(str(tiny_llama), n_ctx=256)
    with pytest.raises(stars_cpp.ParameterError, match=r"typical_p must be in \(0, 1\]"):
        engine.generate(PROMPT, mode="plain", typical_p=0.0)


def test_auto_samples_on_the_host_without_a_gpu(tiny_llama):
    # This build of llama-cpp-python has no GPU backend: "auto" means host here.
    [r] = stars_cpp.Engine(str(tiny_llama), n_ctx=256).generate(
        [PROMPT], mode="plain", max_tokens=8, seed=1)
    assert r.stats.backend_tokens_sampled == 0 and r.stats.sampling_fallback == ""
