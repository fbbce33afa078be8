"""logprobs: each emitted token's log-probability under the policy (the log-softmax of its raw
logits, before temperature and truncation), in the Result and through the OpenAI surface,
checked against the tiny F32 model's logits read off a KvSession."""

from __future__ import annotations

import numpy as np
import openai
import pytest
from test_server import launch

import stars_cpp
from stars_cpp import _core

CHAT = [{"role": "user", "content": "Tell me a story"}]
PROMPT = "Once upon a time"


def _reference(model: _core.Model, prompt_tokens: list[int], tokens: list[int]) -> np.ndarray:
    """log-softmax rows for each of `tokens` after `prompt_tokens`, from scratch."""
    session = _core.testing.KvSession(model, n_ctx=512)
    seq = session.acquire()
    n = len(prompt_tokens)
    [row] = session.decode(prompt_tokens, list(range(n)), [seq] * n, [False] * (n - 1) + [True])
    out = []
    for pos, token in enumerate(tokens, start=n):
        logits = session.logits(row).astype(np.float64)
        out.append(logits - logits.max() - np.log(np.exp(logits - logits.max()).sum()))
        [row] = session.decode([token], [pos], [seq], [True])
    return np.array(out)


def _chat_tokens(model: _core.Model) -> list[int]:
    rendered = model.apply_chat_template([(m["role"], m["content"]) for m in CHAT])
    tokens = model.tokenize(rendered, True, True)
    return tokens[1:] if len(tokens) > 1 and tokens[0] == tokens[1] else tokens


def _check(model, prompt_tokens, tokens, logprobs, tops, n_top):
    expected = _reference(model, prompt_tokens, tokens)
    assert len(logprobs) == len(tokens) > 0
    for i, token in enumerate(tokens):
        assert logprobs[i] == pytest.approx(expected[i][token], abs=1e-4), i
        order = np.argsort(-expected[i], kind="stable")[:n_top]
        assert len(tops[i]) == n_top
        for (alt_token, alt_logprob), want in zip(tops[i], order):
            assert alt_logprob == pytest.approx(expected[i][want], abs=1e-4)
            assert expected[i][alt_token] == pytest.approx(expected[i][want], abs=1e-4)


@pytest.mark.parametrize("mode", ["plain", "stars"])
def test_result_logprobs_are_the_models(tiny_llama, tiny_model, mode):
    def reward(prompts, responses):
        return [float(len(r) % 7) for r in responses]

    with stars_cpp.Engine(str(tiny_llama), reward, n_ctx=512) as engine:
        result = engine.generate(PROMPT, mode=mode, max_tokens=24, segment_tokens=4, seed=3,
                                 temperature=1.3, top_k=5, logprobs=True, top_logprobs=3)
        plain = engine.generate(PROMPT, mode=mode, max_tokens=24, segment_tokens=4, seed=3,
                                temperature=1.3, top_k=5)
    assert result.tokens == plain.tokens  # asking for logprobs changes no token
    assert plain.logprobs == [] and all(s.logprobs == [] for s in plain.segments)
    assert [e.token for e in result.logprobs] == result.tokens
    assert [e.token for s in result.segments for e in s.logprobs] == result.tokens
    _check(tiny_model, tiny_model.tokenize(PROMPT, True, False), result.tokens,
           [e.logprob for e in result.logprobs],
           [[(a.token, a.logprob) for a in e.top_logprobs] for e in result.logprobs], 3)
    record = stars_cpp.engine.result_to_dict(result)
    assert [e["logprob"] for e in record["logprobs"]] == [e.logprob for e in result.logprobs]
    assert record["logprobs"][0]["bytes"] == list(result.logprobs[0].bytes)


def test_top_logprobs_needs_logprobs(tiny_llama):
    with stars_cpp.Engine(str(tiny_llama), n_ctx=256) as engine:
        with pytest.raises(stars_cpp.ParameterError) as raised:
            engine.generate(PROMPT, mode="plain", top_logprobs=2)
    assert raised.value.param == "top_logprobs"


@pytest.fixture(scope="module")
def client(tiny_llama):
    proc, port = launch(tiny_llama)
    yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
    proc.terminate()
    proc.communicate(timeout=30)


@pytest.mark.frontends
def test_openai_chat_logprobs_streamed_and_not(client, tiny_model):
    kwargs = dict(model="tiny", messages=CHAT, max_tokens=10, seed=5, logprobs=True,
                  top_logprobs=2, extra_body={"mode": "plain"})
    whole = client.chat.completions.create(**kwargs)
    content = whole.choices[0].logprobs.content
    streamed = [item for chunk in client.chat.completions.create(stream=True, **kwargs)
                if chunk.choices and chunk.choices[0].logprobs
                for item in chunk.choices[0].logprobs.content]
    assert [(c.token, c.logprob) for c in streamed] == [(c.token, c.logprob) for c in content]
    tokens = [tiny_model.tokenize(c.token, False, True)[0] if c.token else None
              for c in content]
    # Token texts round-trip to ids on the tiny vocabulary (one character per token).
    prompt = _chat_tokens(tiny_model)
    _check(tiny_model, prompt, tokens, [c.logprob for c in content],
           [[(tiny_model.tokenize(a.token, False, True)[0], a.logprob) for a in c.top_logprobs]
            for c in content], 2)
    assert "".join(c.token for c in content) == whole.choices[0].message.content


@pytest.mark.frontends
def test_openai_completion_logprobs_streamed_and_not(client, tiny_model):
    kwargs = dict(model="tiny", prompt=PROMPT, max_tokens=9, seed=2, logprobs=2,
                  extra_body={"mode": "plain"})
    whole = client.completions.create(**kwargs).choices[0]
    streamed = [chunk.choices[0].logprobs for chunk in
                client.completions.create(stream=True, **kwargs)
                if chunk.choices and chunk.choices[0].logprobs]
    assert [t for p in streamed for t in p.token_logprobs] == whole.logprobs.token_logprobs
    tokens = [tiny_model.tokenize(t, False, True)[0] for t in whole.logprobs.tokens]
    _check(tiny_model, tiny_model.tokenize(PROMPT, True, False), tokens,
           whole.logprobs.token_logprobs,
           [[(tiny_model.tokenize(t, False, True)[0], lp) for t, lp in top.items()]
            for top in whole.logprobs.top_logprobs], 2)
    assert "".join(whole.logprobs.tokens) == whole.text


def test_logprobs_follow_tokens_cut_by_a_stop_string(tiny_llama):
    def reward(prompts, responses):
        return [float(len(r) % 5) for r in responses]

    with stars_cpp.Engine(str(tiny_llama), reward, n_ctx=512) as engine:
        for stop in (["e"], ["e ", "a"], ["the"]):
            result = engine.generate(PROMPT, max_tokens=30, segment_tokens=3, seed=4,
                                     stop=stop, logprobs=True)
            assert [e.token for e in result.logprobs] == result.tokens, stop
            for segment in result.segments:
                assert [e.token for e in segment.logprobs] == segment.tokens, stop


def test_too_many_output_rows_are_refused_not_aborted(tiny_model):
    # llama.cpp aborts the process on more output rows than the context reserved.
    session = _core.testing.KvSession(tiny_model, n_ctx=64)
    seq = session.acquire()
    with pytest.raises(stars_cpp.ParameterError, match="output rows"):
        session.decode([1, 2, 3], [0, 1, 2], [seq] * 3, [True] * 3)
    assert len(session.decode([1, 2, 3], [0, 1, 2], [seq] * 3, [False, False, True])) == 1
