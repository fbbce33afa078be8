"""JudgeReward: KV-cached yes/no judging, token passthrough, tokenizer bridging."""

from __future__ import annotations

import pytest

import stars_cpp
from stars_cpp.models import gemma3_270m_path

PROMPT = "Once upon a time"
TINY_YES_NO = dict(yes=" yes", no=" no")  # single tokens of the tiny vocabulary
# Quantized judges: llama.cpp's CPU logits move with where a row's cells sit in the KV cache
# (see LAYOUT_NOISE in test_kv_session.py). The same Gemma-3-270M judge text decoded from
# scratch at cell offsets 0..40 gave 1.593 to 1.684; incremental against from-scratch differed
# by at most 0.227 over 4 seeds with SmolLM2 and Gemma judges. F32 judges match within 1e-4.
JUDGE_TOLERANCE = 0.35


def chosen_rewards(result):
    """(tokens so far, text so far, reward of the chosen candidate) per segment."""
    tokens, text, out = [], "", []
    for segment in result.segments:
        tokens += list(segment.tokens)
        text += segment.text
        out.append((list(tokens), text, segment.reward))
    return out


@pytest.mark.parametrize("threshold", ["auto", 0.0])
@pytest.mark.parametrize("layout", ["question_first", "question_last"])
def test_incremental_cost_is_segment_plus_suffix(tiny_llama, layout, threshold):
    judge = stars_cpp.JudgeReward("policy", layout=layout, **TINY_YES_NO)
    engine = stars_cpp.Engine(str(tiny_llama), judge, n_ctx=4096)
    k = 4
    # A fixed width with candidates == max_attempts: one round per segment, so every accepted
    # candidate was scored in the round before its Commit and its fork becomes the judge's trunk.
    result = engine.generate(PROMPT, segment_tokens=k, candidates=3, max_attempts=3,
                             width="fixed", max_tokens=24, seed=5, threshold=threshold)
    native = judge.native
    assert native.shares_vocabulary
    stats = result.stats
    n_prefix = native.n_prefix_tokens(PROMPT)
    # A float threshold scores r(x, empty) first: the suffix alone.
    candidate_rows = stats.reward_rows - (threshold != "auto")
    expected = n_prefix + candidate_rows * k + stats.reward_rows * native.n_suffix_tokens
    assert stats.reward_tokens_decoded == expected
    for tokens, _, reward in chosen_rewards(result):
        assert reward == pytest.approx(native.score_policy_tokens(PROMPT, tokens), abs=1e-4)


def test_scores_equal_from_scratch_across_rounds_and_fallbacks(tiny_llama):
    judge = stars_cpp.JudgeReward("policy", **TINY_YES_NO)
    engine = stars_cpp.Engine(str(tiny_llama), judge, n_ctx=4096)
    results = engine.generate([PROMPT, "The cat sat"], segment_tokens=3, candidates=2,
                              max_attempts=5, threshold=100.0, acceptance="hard", max_tokens=18,
                              seed=2)
    fallbacks = 0
    for prompt, result in zip([PROMPT, "The cat sat"], results):
        fallbacks += sum(s.fallback for s in result.segments)
        for tokens, _, reward in chosen_rewards(result):
            assert reward == pytest.approx(judge.native.score_policy_tokens(prompt, tokens),
                                           abs=1e-4)
    assert fallbacks > 0  # the fallback path (a best kept from an earlier round) was taken


@pytest.mark.real
def test_bridged_vocabularies_keep_the_common_prefix(smollm2, tiny_llama):
    # A SmolLM2 policy judged by the tiny model: text is re-tokenized for the judge.
    judge = stars_cpp.JudgeReward(str(tiny_llama), **TINY_YES_NO)
    engine = stars_cpp.Engine(str(smollm2), judge, n_ctx=4096)
    prompt = [{"role": "user", "content": "Tell me a story about a dragon."}]
    result = engine.generate(prompt, segment_tokens=5, candidates=3, max_attempts=6,
                             max_tokens=40, seed=4)
    assert not judge.native.shares_vocabulary
    assert len(result.segments) >= 4
    user = prompt[0]["content"]
    for _, text, reward in chosen_rewards(result):
        assert reward == pytest.approx(judge([user], [text])[0], abs=1e-4)
    # Re-tokenizing keeps the cached prefix: far fewer judge tokens than re-reading everything.
    full = sum(len(judge.native.render(user, t)) for _, t, _ in chosen_rewards(result))
    assert result.stats.reward_tokens_decoded < full


@pytest.mark.real
@pytest.mark.parametrize("layout", ["question_first", "question_last"])
def test_smollm2_judges_itself(smollm2, layout):
    judge = stars_cpp.JudgeReward("policy", layout=layout)
    engine = stars_cpp.Engine(str(smollm2), judge, n_ctx=4096)
    prompt = [{"role": "user", "content": "How do I make a cup of tea?"}]
    k = 8
    # A fixed width with candidates == max_attempts: one round per segment.
    result = engine.generate(prompt, segment_tokens=k, candidates=3, max_attempts=3,
                             width="fixed", max_tokens=32, seed=7)
    native = judge.native
    stats = result.stats
    user = prompt[0]["content"]
    assert result.finish_reason == "length"  # every candidate is a full segment of k tokens
    expected = native.n_prefix_tokens(user) + stats.reward_rows * (k + native.n_suffix_tokens)
    assert stats.reward_tokens_decoded == expected
    for tokens, _, reward in chosen_rewards(result):
        scratch = native.score_policy_tokens(user, tokens)
        assert reward == pytest.approx(scratch, abs=JUDGE_TOLERANCE)
    # Asked first, the question leaves only ChatML's closing tokens and the answer cue.
    if layout == "question_first":
        assert native.n_suffix_tokens <= 8
    else:
        assert native.n_suffix_tokens > 20


@pytest.mark.real
def test_gemma_judges_smollm2_across_rounds(smollm2):
    judge = stars_cpp.JudgeReward(str(gemma3_270m_path()))
    engine = stars_cpp.Engine(str(smollm2), judge, n_ctx=4096)
    assert not judge.native.shares_vocabulary
    prompt = [{"role": "user", "content": "Give me a tip for sleeping well."}]
    result = engine.generate(prompt, segment_tokens=6, candidates=3, max_tokens=30, seed=3)
    assert len(result.segments) >= 3
    for _, text, reward in chosen_rewards(result):
        scratch = judge([prompt[0]["content"]], [text])[0]
        assert reward == pytest.approx(scratch, abs=JUDGE_TOLERANCE)


def _mappings_of(path) -> int:
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if line.rstrip().endswith(str(path)))


@pytest.mark.real
def test_policy_judge_shares_the_loaded_weights(smollm2):
    before = _mappings_of(smollm2)
    engine = stars_cpp.Engine(str(smollm2), n_ctx=1024)
    one_load = _mappings_of(smollm2) - before
    assert one_load >= 1
    shared = stars_cpp.Engine(engine.model, stars_cpp.JudgeReward("policy"), n_ctx=1024)
    assert _mappings_of(smollm2) - before == one_load  # no second mapping of the file
    assert shared.generate("Hi", max_tokens=8, segment_tokens=4, seed=1).reward is not None
    second = stars_cpp.Engine(str(smollm2), stars_cpp.JudgeReward(str(smollm2)), n_ctx=1024)
    assert _mappings_of(smollm2) - before == 3 * one_load  # a path loads again
    del second


def test_yes_or_no_without_a_single_token(tiny_llama):
    with pytest.raises(stars_cpp.RewardError, match="no single token for yes=' Yes'"):
        stars_cpp.JudgeReward(str(tiny_llama))  # " Yes" is three tokens there
    judge = stars_cpp.JudgeReward("policy")  # checked when an engine binds it
    with pytest.raises(stars_cpp.RewardError, match="no single token"):
        stars_cpp.Engine(str(tiny_llama), judge)
    with pytest.raises(ValueError, match="question"):
        stars_cpp.JudgeReward("policy", question="")
    engine = stars_cpp.Engine(str(tiny_llama), stars_cpp.JudgeReward("policy", **TINY_YES_NO))
    assert engine.generate("x", max_tokens=4, segment_tokens=2, seed=1).reward is not None
