"""CausalReward: a scalar head on a causal model's last hidden state, KV-cached per prompt.

These tests use tiny llama GGUFs carrying a head in their metadata, written directly; the
conversion from transformers checkpoints is tested in test_convert_reward.py.
"""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest
from tiny_models import LLAMA_HPARAMS, write_tiny_llama

import stars_cpp

N_EMBD = int(LLAMA_HPARAMS["n_embd"])
PROMPT = "Once upon a time"
HEAD_KEY = "stars.reward.head.weight"


def head(seed: int = 7, n: int = N_EMBD) -> list[float]:
    return list(np.random.default_rng(seed).normal(0.0, 0.5, n))


@pytest.fixture(scope="module")
def causal_rm(model_dir):
    return write_tiny_llama(model_dir / "tiny-causal-rm.gguf", seed=3,
                            metadata={HEAD_KEY: head(), "stars.reward.head.bias": 0.25,
                                      "stars.reward.head.row": -1})


def chosen(result):
    """(tokens so far, text so far, reward of the chosen candidate) per segment."""
    tokens, text, out = [], "", []
    for segment in result.segments:
        tokens += list(segment.tokens)
        text += segment.text
        out.append((list(tokens), text, segment.reward))
    return out


def last_hidden_state(llm: llama_cpp.Llama, tokens: list[int]) -> np.ndarray:
    """llama-cpp-python's own decode of `tokens` in a fresh sequence: the last row's state."""
    llm._ctx.kv_cache_clear()
    llm._batch.set_batch(tokens, n_past=0, logits_all=True)
    llm._ctx.decode(llm._batch)
    row = llama_cpp.llama_get_embeddings_ith(llm._ctx.ctx, len(tokens) - 1)
    return np.ctypeslib.as_array(row, shape=(N_EMBD,)).astype(np.float64)


def test_score_is_the_head_on_llama_cpps_last_hidden_state(causal_rm):
    reward = stars_cpp.CausalReward(causal_rm)
    llm = llama_cpp.Llama(model_path=str(causal_rm), embedding=True, n_ctx=512,
                          pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE, verbose=False)
    w = np.array(head(), dtype=np.float64)
    for response in ["", "a cat sat on the mat", "it was a dark and stormy night . " * 3]:
        tokens = reward.native.input_tokens(PROMPT, response)
        expected = float(w @ last_hidden_state(llm, tokens)) + 0.25
        assert reward([PROMPT], [response])[0] == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_chat_template_renders_user_then_assistant(causal_rm):
    reward = stars_cpp.CausalReward(causal_rm)
    rendered = reward.native.render("Hi", "Hello!")
    assert rendered.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!"
                             "<|im_end|>\n")
    custom = stars_cpp.CausalReward(causal_rm, template="Q: {prompt}\nA: {response}")
    assert custom.native.render("Hi", "Hello!") == "Q: Hi\nA: Hello!"
    assert custom.native.n_suffix_tokens == 0


@pytest.mark.parametrize("threshold", ["auto", 0.5])
@pytest.mark.parametrize("template", [None, "Q: {prompt}\nA: {response}"])
def test_incremental_equals_from_scratch_across_rounds(tiny_llama, causal_rm, template,
                                                       threshold):
    reward = stars_cpp.CausalReward(causal_rm, template=template)
    engine = stars_cpp.Engine(str(tiny_llama), reward, n_ctx=4096)
    k = 4
    # A fixed width with candidates == max_attempts: each round's candidates are all scored,
    # and the accepted one's fork becomes the trunk, so every later row is decoded on a fork.
    result = engine.generate(PROMPT, segment_tokens=k, candidates=3, max_attempts=3,
                             width="fixed", max_tokens=24, seed=5, threshold=threshold)
    native = reward.native
    assert native.shares_vocabulary
    assert len(result.segments) == 6
    for tokens, _, score in chosen(result):
        assert score == pytest.approx(native.score_policy_tokens(PROMPT, tokens), abs=1e-4)
    # Per candidate only its k new tokens and the template's tail are decoded. A float
    # threshold also scores r(x, empty) first: the tail alone, or with no tail the prompt's
    # last token again.
    stats = result.stats
    empty_rows = 0 if threshold == "auto" else 1
    rows = stats.reward_rows - empty_rows
    first = (native.n_suffix_tokens or 1) * empty_rows
    expected = native.n_prefix_tokens(PROMPT) + first + rows * (k + native.n_suffix_tokens)
    assert stats.reward_tokens_decoded == expected


@pytest.mark.real
def test_bridged_vocabulary_across_rounds(smollm2, causal_rm):
    reward = stars_cpp.CausalReward(causal_rm)
    engine = stars_cpp.Engine(str(smollm2), reward, n_ctx=4096)
    prompt = [{"role": "user", "content": "Tell me a story about a dragon."}]
    result = engine.generate(prompt, segment_tokens=5, candidates=3, max_attempts=6,
                             max_tokens=40, seed=4)
    assert not reward.native.shares_vocabulary
    assert len(result.segments) >= 4
    for _, text, score in chosen(result):
        assert score == pytest.approx(reward([prompt[0]["content"]], [text])[0], abs=1e-4)
    assert result.reward == pytest.approx(reward([prompt[0]["content"]], [result.text])[0],
                                          abs=1e-4)


def test_missing_or_misfit_head(model_dir, tiny_llama):
    with pytest.raises(stars_cpp.RewardError, match=r"no stars\.reward\.head\.weight.*convert"):
        stars_cpp.CausalReward(tiny_llama)
    short = write_tiny_llama(model_dir / "short-head.gguf", metadata={HEAD_KEY: head(n=10)})
    with pytest.raises(stars_cpp.RewardError, match="has 10 values but the model's n_embd is 64"):
        stars_cpp.CausalReward(short)
    with pytest.raises(stars_cpp.ModelNotFoundError):
        stars_cpp.CausalReward(model_dir / "missing.gguf")
    with pytest.raises(ValueError, match=r"template must hold \{response\} exactly once"):
        stars_cpp.CausalReward(tiny_llama.with_name("tiny-causal-rm.gguf"), template="{prompt}")
    engine = stars_cpp.Engine(str(tiny_llama), stars_cpp.CausalReward(
        tiny_llama.with_name("tiny-causal-rm.gguf")), n_ctx=1024)
    assert engine.generate(PROMPT, segment_tokens=4, max_tokens=8, seed=1).text


@pytest.mark.frontends
def test_cli_causal_reward(tiny_llama, causal_rm, tmp_path):
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "stars_cpp", "generate", PROMPT, "--model",
                          str(tiny_llama), "--raw", "--reward", f"causal:{causal_rm}",
                          "--max-tokens", "8", "--seed", "2", "--json"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    expected = stars_cpp.CausalReward(causal_rm)([PROMPT], [data["text"]])[0]
    assert data["reward"] == pytest.approx(expected, abs=1e-4)


def test_from_scratch_rows_beyond_one_context(causal_rm):
    # The standalone scorer has 2048 cells: 8 rows of ~400 tokens go through in several groups.
    reward = stars_cpp.CausalReward(causal_rm)
    texts = [f"row {i}: " + "the cat sat on the mat . " * 60 for i in range(8)]
    assert len(reward.native.input_tokens(PROMPT, texts[0])) > 300
    together = reward([PROMPT] * 8, texts)
    alone = [reward([PROMPT], [t])[0] for t in texts]
    assert together == pytest.approx(alone, abs=1e-4)


@pytest.mark.slow
def test_small_reward_context_evicts_and_rebuilds_trunks(tiny_llama, causal_rm):
    # Shared layout: eight prompts' trunks and forks need about 600 cells, so a 256-cell reward
    # context must evict trunks and rebuild them, and still give every chosen segment its
    # from-scratch score. (Isolated, the context grows its streams to the rows instead.)
    prompts = [f"{PROMPT}, in town number {i}, there lived" for i in range(8)]
    params = dict(segment_tokens=4, candidates=3, max_attempts=3, max_tokens=24, seed=5)
    roomy = stars_cpp.CausalReward(causal_rm)
    tight = stars_cpp.CausalReward(causal_rm, n_ctx=256)
    wide = stars_cpp.Engine(str(tiny_llama), roomy, n_ctx=4096,
                            kv_layout="shared").generate(prompts, **params)
    small = stars_cpp.Engine(str(tiny_llama), tight, n_ctx=4096,
                             kv_layout="shared").generate(prompts, **params)
    assert [r.text for r in small] == [r.text for r in wide]
    # Rebuilt trunks decode in other batch shapes than from scratch; with the F16 KV cache that
    # moves a score by up to about 1e-3 (a wrong trunk moves it by far more).
    for prompt, result in zip(prompts, small):
        for tokens, _, score in chosen(result):
            assert score == pytest.approx(roomy.native.score_policy_tokens(prompt, tokens),
                                          abs=1e-3)
    # Rebuilt trunks are decoded again: the price of the small context, and proof it was paid.
    decoded = [r.stats.reward_tokens_decoded for r in small]
    assert sum(decoded) > sum(r.stats.reward_tokens_decoded for r in wide)


def test_reward_context_too_small_for_one_row(tiny_llama, causal_rm):
    tight = stars_cpp.CausalReward(causal_rm, n_ctx=256)
    engine = stars_cpp.Engine(str(tiny_llama), tight, n_ctx=4096)
    with pytest.raises(stars_cpp.ContextLengthError, match=r"n_ctx=256"):
        engine.generate(PROMPT + " and" * 300, segment_tokens=4, max_tokens=8, seed=1)
    # The engine and its reward keep working.
    assert engine.generate(PROMPT, segment_tokens=4, max_tokens=8, seed=1).text


def test_round_larger_than_the_reward_context_is_scored_in_groups(tiny_llama, causal_rm):
    # Shared layout: 16 candidates of 16 tokens plus the template's tail need over 256 cells
    # beside the trunk: one prompt's round is split, and the accepted fork may be gone by the
    # commit. The width is fixed so that every round is that wide.
    params = dict(segment_tokens=16, candidates=16, max_attempts=16, width="fixed",
                  max_tokens=48, seed=9)
    roomy = stars_cpp.CausalReward(causal_rm)
    tight = stars_cpp.CausalReward(causal_rm, n_ctx=256)
    wide = stars_cpp.Engine(str(tiny_llama), roomy, n_ctx=4096,
                            kv_layout="shared").generate(PROMPT, **params)
    small = stars_cpp.Engine(str(tiny_llama), tight, n_ctx=4096,
                             kv_layout="shared").generate(PROMPT, **params)
    assert small.text == wide.text
    flat = [r for s in small.segments for r in s.rewards]
    assert flat == pytest.approx([r for s in wide.segments for r in s.rewards], abs=1e-4)
    for tokens, _, score in chosen(small):
        assert score == pytest.approx(roomy.native.score_policy_tokens(PROMPT, tokens), abs=1e-4)
    assert small.stats.reward_tokens_decoded > wide.stats.reward_tokens_decoded
