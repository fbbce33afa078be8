"""repeat_penalty: llama.cpp's penalties sampler over the response's last 64 tokens, in every
mode. With greedy draws the tokens are exactly the argmax of the tiny F32 model's logits after
llama.cpp's rule (a logit above 0 divided by the penalty, one at or below 0 multiplied), for
each token of the response's window: a STARS attempt's fresh chain sees the accepted segments
too."""

from __future__ import annotations

import numpy as np
import pytest

import stars_cpp
from stars_cpp import _core

PROMPT = "Once upon a time"
WINDOW = 64


def _greedy_with_penalty(model: _core.Model, penalty: float, n: int) -> list[int]:
    prompt = model.tokenize(PROMPT, True, False)
    session = _core.testing.KvSession(model, n_ctx=512)
    seq = session.acquire()
    [row] = session.decode(prompt, list(range(len(prompt))), [seq] * len(prompt),
                           [False] * (len(prompt) - 1) + [True])
    out: list[int] = []
    for pos in range(len(prompt), len(prompt) + n):
        logits = session.logits(row).astype(np.float64)
        for token in set(out[-WINDOW:]):
            value = logits[token]
            logits[token] = value / penalty if value > 0 else value * penalty
        token = int(np.argmax(logits))
        out.append(token)
        [row] = session.decode([token], [pos], [seq], [True])
    return out


@pytest.mark.parametrize("sampling", ["host", "backend"])
@pytest.mark.parametrize("mode", ["plain", "best_of_n", "stars"])
def test_greedy_tokens_follow_llama_cpps_penalty(tiny_llama, tiny_model, mode, sampling):
    def reward(prompts, responses):
        return [0.0 for _ in responses]

    expected = _greedy_with_penalty(tiny_model, 1.8, 40)
    assert expected != _greedy_with_penalty(tiny_model, 1.0, 40)  # the penalty matters here
    # On the backend llama.cpp's penalties would count no drawn token: the request samples on
    # the host, and still gives the host's tokens.
    with stars_cpp.Engine(str(tiny_llama), reward, n_ctx=512, sampling=sampling) as engine:
        result = engine.generate(PROMPT, mode=mode, temperature=0.0, repeat_penalty=1.8,
                                 max_tokens=40, segment_tokens=6, candidates=2, seed=1)
    assert result.tokens == expected[:len(result.tokens)]
    assert len(result.tokens) == 40 or result.finish_reason == "stop"


def test_repeat_penalty_samples_on_the_host(tiny_llama):
    with stars_cpp.Engine(str(tiny_llama), n_ctx=256, sampling="backend") as engine:
        result = engine.generate(PROMPT, mode="plain", max_tokens=4, repeat_penalty=1.3, seed=2)
    assert "repeat_penalty" in result.stats.sampling_fallback
    assert result.stats.backend_tokens_sampled == 0
