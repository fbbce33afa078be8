"""Memory that fits the call: contexts sized to what requests need, one context per self-judge,
and a quantized KV cache on request."""

from __future__ import annotations

import gc
import subprocess
import sys

import numpy as np
import pytest

import stars_cpp
from stars_cpp import _core

TINY_YES_NO = dict(yes=" yes", no=" no")
PARAMS = dict(mode="stars", candidates=4, segment_tokens=4, max_tokens=12, width="fixed")


def test_self_judge_holds_one_context(tiny_llama):
    gc.collect()
    before = _core.live_contexts()
    judge = stars_cpp.JudgeReward("policy", **TINY_YES_NO)
    engine = stars_cpp.Engine(str(tiny_llama), judge, n_ctx=512)
    assert len(engine.generate("hello", seed=1, **PARAMS).tokens) == 12
    # The policy's context and the judge's: before, binding also made a standalone judge
    # context (three in all).
    assert _core.live_contexts() - before == 2
    judge(["a question"], ["an answer"])  # a direct call makes its own, then
    assert _core.live_contexts() - before == 3
    del engine, judge
    gc.collect()
    assert _core.live_contexts() == before


@pytest.mark.parametrize("kv_layout,grown", [("isolated", 72), ("shared", 128)])
def test_policy_context_grows_with_the_queue(tiny_llama, kv_layout, grown):
    reward = lambda prompts, responses: [float(len(r) % 5) for r in responses]  # noqa: E731
    engine = stars_cpp.Engine(str(tiny_llama), reward, n_ctx=4096, kv_layout=kv_layout)
    alone = engine.generate("grow", seed=3, **PARAMS)
    metrics = engine.metrics()
    # One STARS request at N = 4 needs 6 sequence ids; the context starts at 8, not 256.
    assert (metrics["sequences_total"], metrics["contexts_created"]) == (8, 1)
    # 12 requests at once need 72 ids: the idle engine makes its context again, with 72 of them
    # (isolated: each id is a whole KV stream) or the next power of two (shared).
    batch = engine.generate([f"grow {i}" for i in range(12)], seed=3, **PARAMS)
    metrics = engine.metrics()
    assert (metrics["sequences_total"], metrics["contexts_created"]) == (grown, 2)
    assert all(len(r.tokens) == 12 for r in batch)
    # The larger context gives the same text: sizes change buffers, not numerics.
    again = engine.generate("grow", seed=3, **PARAMS)
    assert list(again.tokens) == list(alone.tokens)
    assert engine.metrics()["contexts_created"] == 2  # no shrink, no remake for a smaller call


@pytest.mark.real
@pytest.mark.parametrize("kv_type", ["q8_0", "f32"])
def test_kv_types_generate_and_judge(kv_type, smollm2):
    # SmolLM2: q8_0 blocks of 32 need a head size they divide (the tiny model's is 16).
    prompts = ["What is the capital of France?", "Give me a tip for studying."] * 3
    texts = ["Paris.", "Sleep well.", "It is Berlin.", "Eat a banana.", "Paris, of course.",
             "Take short breaks and put the phone away."]
    scores = {}
    for kind in ("f16", kv_type):
        engine = stars_cpp.Engine(str(smollm2), stars_cpp.JudgeReward("policy", kv_type=kind),
                                  n_ctx=1024, kv_type=kind)
        result = engine.generate("Say hello.", seed=2, **PARAMS)
        assert len(result.tokens) == 12 and np.isfinite(result.reward)
        judge = stars_cpp.JudgeReward(str(smollm2), kv_type=kind)
        scores[kind] = np.array(judge(prompts, texts))
    # The cache's precision moves scores a little, not their order
    # (docs/memory-and-sampling.md, "Memory").
    assert np.corrcoef(scores["f16"], scores[kv_type])[0, 1] > 0.9, scores


@pytest.mark.parametrize("kv_layout", ["isolated", "shared"])
def test_a_cache_type_the_model_cannot_take_names_the_reason(tiny_llama, kv_layout):
    with pytest.raises(stars_cpp.StarsError, match="kv_type q8_0.*does not divide"):
        stars_cpp.Engine(str(tiny_llama), n_ctx=256, kv_type="q8_0",
                         kv_layout=kv_layout).generate("hi", mode="plain", max_tokens=2)


@pytest.mark.frontends
def test_bad_kv_type_is_refused(tiny_llama, tmp_path):
    for make in (lambda: stars_cpp.Engine(str(tiny_llama), kv_type="q4"),
                 lambda: stars_cpp.JudgeReward("policy", kv_type="q4")):
        with pytest.raises(stars_cpp.ParameterError, match="kv_type must be one of"):
            make()
    done = subprocess.run([sys.executable, "-m", "stars_cpp", "generate", "hi", "--model",
                           str(tiny_llama), "--kv-type", "q4"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--kv-type" in done.stderr


def test_n_seq_max_sets_the_first_size(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), n_ctx=512, n_seq_max=32)
    engine.generate("hi", mode="plain", max_tokens=2)
    assert engine.metrics()["sequences_total"] == 32
    with pytest.raises(stars_cpp.ParameterError, match=r"n_seq_max must be in \[0, 256\]"):
        stars_cpp.Engine(str(tiny_llama), n_seq_max=300)


@pytest.mark.parametrize("kv_layout", ["isolated", "shared"])
def test_a_short_response_reserves_no_full_segments(tiny_llama, kv_layout):
    # Each segment is at most max_tokens long: 4 candidates of 64-token segments need no room
    # here (they once did, and the request was refused as too long for n_ctx=256).
    reward = lambda prompts, responses: [1.0] * len(responses)  # noqa: E731
    engine = stars_cpp.Engine(str(tiny_llama), reward, n_ctx=256, kv_layout=kv_layout)
    prompt = "word " * 100  # about 200 tokens
    result = engine.generate(prompt, mode="stars", candidates=4, segment_tokens=64, max_tokens=2,
                             seed=1)
    assert len(result.tokens) == 2


def test_isolated_forks_copy_whole_streams_and_shared_ones_copy_nothing(tiny_llama):
    reward = lambda prompts, responses: [float(len(r) % 3) for r in responses]  # noqa: E731
    copies = {}
    for layout in ("isolated", "shared"):
        engine = stars_cpp.Engine(str(tiny_llama), reward, n_ctx=512, kv_layout=layout)
        result = engine.generate("hello", seed=1, **PARAMS)
        copies[layout] = engine.metrics()["kv_stream_copies"]
        # Each of the 3 segments: 4 forks and an adoption, at least.
        assert layout == "shared" or copies[layout] >= 5 * len(result.segments)
    assert copies["shared"] == 0
