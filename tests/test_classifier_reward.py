"""ClassifierReward: a GGUF classifier through llama.cpp's RANK pooling."""

from __future__ import annotations

import llama_cpp
import numpy as np
import pytest
from tiny_models import write_tiny_bert_classifier

import stars_cpp

TEXTS = [
    "the movie was great and i loved it",
    "terrible service , never again",
    "it was fine",
    "a happy story about a cat and a dog",
    "",
]


@pytest.fixture(scope="module")
def llama_rank(tiny_bert):
    return llama_cpp.Llama(model_path=str(tiny_bert), embedding=True, n_ctx=512,
                           pooling_type=llama_cpp.LLAMA_POOLING_TYPE_RANK, verbose=False)


def test_scores_equal_llama_cpp_python(tiny_bert, llama_rank):
    n_out = llama_cpp.llama_model_n_cls_out(llama_rank.model)
    assert n_out == 2
    reward = stars_cpp.ClassifierReward(str(tiny_bert), label=1)
    assert not reward.pair  # two labels: a classifier of the response alone
    ours = reward(["ignored"] * len(TEXTS), TEXTS)
    for text, score in zip(TEXTS, ours):
        # Only the first n_cls_out values of llama-cpp-python's RANK output are real scores.
        theirs = np.asarray(llama_rank.embed(text), dtype=np.float64)[:n_out]
        assert score == pytest.approx(theirs[1], abs=1e-4)


def test_label_pairs_and_names(tiny_bert, llama_rank):
    diff = stars_cpp.ClassifierReward(str(tiny_bert), label=("positive", "negative"))
    pos = stars_cpp.ClassifierReward(str(tiny_bert), label="positive")
    neg = stars_cpp.ClassifierReward(str(tiny_bert), label=0)
    p, n, d = (r([""] * 3, TEXTS[:3]) for r in (pos, neg, diff))
    assert d == pytest.approx([a - b for a, b in zip(p, n)], abs=1e-6)
    assert p != n


@pytest.mark.slow
def test_batched_equals_one_at_a_time(tiny_bert):
    reward = stars_cpp.ClassifierReward(str(tiny_bert), label=1)
    batched = reward([""] * 40, TEXTS * 8)
    single = [reward([""], [text])[0] for text in TEXTS]
    assert batched == pytest.approx(single * 8, abs=1e-6)


def test_long_rows_are_truncated_keeping_the_end(tiny_bert):
    reward = stars_cpp.ClassifierReward(str(tiny_bert), label=1, n_ctx=16)
    tail = " the movie was great"
    long_text = "terrible awful " * 40 + tail
    (score,) = reward([""], [long_text])
    # The kept end of the row scores like a row that only has that end.
    model = stars_cpp._core.Model.load(str(tiny_bert), 0)
    body = model.tokenize(long_text, add_special=False)
    kept = model.detokenize(body[-14:])
    assert score == pytest.approx(reward([""], [kept])[0], abs=1e-5)


def test_reranker_pairs(model_dir):
    path = write_tiny_bert_classifier(model_dir / "tiny-rerank.gguf", labels=("relevance",))
    reward = stars_cpp.ClassifierReward(str(path))
    assert reward.pair  # a single output: a reranker of (query, document)
    a, b = reward(["cats", "dogs"], ["a story about a cat", "a story about a cat"])
    assert a != b  # the query matters


def test_in_the_engine_with_truncation_counted(tiny_llama, tiny_bert):
    reward = stars_cpp.ClassifierReward(str(tiny_bert), label=1, n_ctx=12)
    engine = stars_cpp.Engine(str(tiny_llama), reward, n_ctx=2048)
    result = engine.generate("Once upon a time", segment_tokens=8, candidates=2, max_tokens=32,
                             seed=1)
    assert len(result.tokens) == 32
    assert result.reward == pytest.approx(reward(["Once upon a time"], [result.text])[0],
                                          abs=1e-5)
    assert result.stats.reward_rows_truncated > 0
    assert result.stats.reward_tokens_decoded > 0


def test_no_classification_head(model_dir, tiny_llama):
    headless = write_tiny_bert_classifier(model_dir / "tiny-bert-headless.gguf", with_head=False)
    with pytest.raises(stars_cpp.RewardError, match="no classification head"):
        stars_cpp.ClassifierReward(str(headless))
    with pytest.raises(stars_cpp.RewardError, match="no classification head"):
        stars_cpp.ClassifierReward(str(tiny_llama))
    assert stars_cpp.Engine(str(tiny_llama)).generate("x", mode="plain", max_tokens=2).tokens


@pytest.mark.parametrize("label,match", [(2, "out of range"), (-1, "out of range"),
                                         ("neutral", "not one of"), ((0, 1, 1), "pair"),
                                         (1.5, "int or a str")])
def test_bad_labels(tiny_bert, tiny_llama, label, match):
    with pytest.raises(ValueError, match=match):
        stars_cpp.ClassifierReward(str(tiny_bert), label=label)
    reward = stars_cpp.ClassifierReward(str(tiny_bert), label=1)
    engine = stars_cpp.Engine(str(tiny_llama), reward)
    assert len(engine.generate("x", max_tokens=4, segment_tokens=2, seed=1).tokens) == 4
