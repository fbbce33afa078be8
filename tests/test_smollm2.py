"""The engine on a real model: SmolLM2-135M-Instruct (Q4_1) from its registry package."""

from __future__ import annotations

import pytest

import stars_cpp
from stars_cpp.rewards import lexical_diversity

# Every test here holds for host and for backend sampling.
pytestmark = pytest.mark.usefixtures("each_sampling")

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def engine(smollm2):
    return stars_cpp.Engine(str(smollm2), lexical_diversity, n_ctx=4096)


def test_end_of_generation_on_a_real_chat_model(engine):
    result = engine.generate(QUESTION, mode="plain", temperature=0.0, max_tokens=64)
    assert result.finish_reason == "stop"
    assert "Paris" in result.text
    assert "<|im_end|>" not in result.text
    assert len(result.tokens) < 64


@pytest.mark.parametrize("mode", ["plain", "best_of_n", "stars"])
def test_modes_finish_with_valid_results(engine, mode):
    prompts = [QUESTION, [{"role": "user", "content": "Write a haiku about the sea."}]]
    results = engine.generate(prompts, mode=mode, segment_tokens=8, candidates=3,
                              max_tokens=40, seed=3)
    for result in results:
        assert result.text.strip()
        assert 0 < len(result.tokens) <= 40
        assert result.finish_reason in ("stop", "length")
        assert result.reward == pytest.approx(lexical_diversity([""], [result.text])[0])
        s = result.stats
        assert s.prompt_tokens + s.tokens_accepted - 1 <= s.policy_tokens_decoded
        assert s.policy_tokens_decoded <= s.prompt_tokens + s.policy_tokens_sampled
        assert s.seconds_total >= s.seconds_policy > 0


def test_stars_raises_reward_over_plain_sampling(engine):
    """Alignment does something: with the same sampler, STARS's segments clear a rising bar."""
    prompt = [{"role": "user", "content": "Tell me about dogs."}]
    plain = engine.generate([prompt] * 4, mode="plain", max_tokens=48, seed=10)
    stars = engine.generate([prompt] * 4, mode="stars", segment_tokens=8, candidates=4,
                            threshold=1.6, acceptance="hard", max_tokens=48, seed=10)
    mean = lambda rs: sum(r.reward for r in rs) / len(rs)  # noqa: E731
    assert mean(stars) > mean(plain)


@pytest.fixture(params=["classifier", "judge", "python"])
def any_reward(request, tiny_bert):
    if request.param == "classifier":
        return stars_cpp.ClassifierReward(str(tiny_bert), label=(1, 0))
    if request.param == "judge":
        return stars_cpp.JudgeReward("policy")
    return lexical_diversity


def test_stars_with_each_reward_type(smollm2, any_reward, request):
    engine = stars_cpp.Engine(str(smollm2), any_reward, n_ctx=4096)
    result = engine.generate(QUESTION, segment_tokens=8, candidates=2, max_attempts=3,
                             max_tokens=32, seed=11)
    assert result.text.strip() and 0 < len(result.tokens) <= 32
    assert result.segments and all(1 <= s.attempts <= 3 for s in result.segments)
    assert "".join(s.text for s in result.segments) == result.text
    # The final reward is the reward model's own score of the final text.
    assert result.reward == pytest.approx(any_reward([QUESTION[0]["content"]], [result.text])[0],
                                          abs=0.35)
    gguf_reward = request.node.callspec.params["any_reward"] != "python"
    assert (result.stats.reward_tokens_decoded > 0) == gguf_reward


@pytest.mark.parametrize("mode", ["plain", "stars"])
def test_max_tokens_inside_a_character_drops_the_partial_character(engine, mode):
    # SmolLM2 spells 🎉 in three byte tokens; a cut after one or two once ended the text in
    # U+FFFD. The tokens stay as sampled.
    for n, text in ((1, ""), (2, ""), (3, "🎉"), (4, "🎉")):
        result = engine.generate("🎉" * 8, mode=mode, max_tokens=n, temperature=0.0,
                                 segment_tokens=2, seed=1)
        assert result.text == text and "\ufffd" not in "".join(s.text for s in result.segments)
        assert len(result.tokens) == n
