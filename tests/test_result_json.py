"""The Result's JSON and trace, written by the C++ core (stars/result_json.h) for every front
end: it reads back as the Result's attributes, names every Stats field, and decodes invalid
UTF-8 as the bindings' str does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import stars_cpp
from stars_cpp import _core
from stars_cpp.engine import STATS_FIELDS, result_to_dict


@pytest.fixture(scope="module")
def result(tiny_llama) -> stars_cpp.Result:
    engine = stars_cpp.Engine(str(tiny_llama), stars_cpp.JudgeReward("policy", yes=" yes",
                                                                     no=" no"), n_ctx=512)
    return engine.generate("hello", segment_tokens=4, max_tokens=16, seed=3, logprobs=True,
                           top_logprobs=2)


def _logprobs(entries) -> list:
    def one(e) -> dict:
        return {"token": e.token, "text": e.text, "bytes": list(e.bytes), "logprob": e.logprob}

    return [{**one(e), "top_logprobs": [one(a) for a in e.top_logprobs]} for e in entries]


def _attributes(result) -> dict:
    segment_fields = ("text", "tokens", "logprobs", "attempts", "rewards", "reward", "threshold",
                      "fallback")
    return {
        "text": result.text, "tokens": list(result.tokens),
        "logprobs": _logprobs(result.logprobs),
        "finish_reason": result.finish_reason, "reward": result.reward,
        "segments": [{name: _logprobs(s.logprobs) if name == "logprobs" else getattr(s, name)
                      for name in segment_fields} for s in result.segments],
        "stats": {name: getattr(result.stats, name) for name in STATS_FIELDS},
    }


def test_json_reads_back_as_the_attributes(result):
    expected = _attributes(result)
    assert json.loads(result.to_json()) == expected
    assert result_to_dict(result) == expected
    assert list(json.loads(result.to_json())) == list(expected)  # the same order
    # Floats stay floats, so the dataset's and server's re-dumps keep their type.
    record = result_to_dict(result)
    assert isinstance(record["stats"]["mean_round_width"], float)
    assert all(isinstance(r, float) for s in record["segments"] for r in s["rewards"])
    assert any(s["threshold"] is None for s in record["segments"])  # the auto warm-up
    assert any(s["threshold"] is not None for s in record["segments"])


def test_layouts(result):
    pretty = result.to_json()
    assert pretty.isascii() and pretty.startswith('{\n  "text": ')
    line = result.to_json(indent=0)
    assert "\n" not in line and json.loads(line) == json.loads(pretty)


def test_stats_fields_name_every_stats_attribute():
    attributes = {name for name in dir(_core.Stats) if not name.startswith("_")}
    assert set(STATS_FIELDS) == attributes and len(STATS_FIELDS) == len(attributes)
    assert STATS_FIELDS is _core.STATS_FIELDS


def test_trace_lines(result):
    lines = result.trace().splitlines()
    assert len(lines) == len(result.segments) + 2
    for i, (line, segment) in enumerate(zip(lines, result.segments)):
        assert line.startswith(f"segment {i}: attempts={segment.attempts} tau=")
        assert json.loads(line[line.index(' "'):]) == segment.text  # a JSON string literal
    assert lines[-2].startswith("stats: policy_tokens_sampled=")
    finish, reward = lines[-1].split(" reward=")
    assert finish == f"finish_reason={result.finish_reason}" and float(reward) == result.reward


@given(st.binary(max_size=64))
def test_strings_decode_invalid_utf8_as_python_does(data):
    literal = _core.testing.json_string(data)
    assert literal.isascii()
    assert json.loads(literal) == data.decode("utf-8", "replace")


def test_cut_characters_become_one_replacement_each():
    cut = "é€😀".encode()[:-1]  # the emoji cut short, as at a segment boundary
    assert json.loads(_core.testing.json_string(cut)) == "é€\ufffd"
    assert _core.testing.json_string(b"\xed\xa0\x80") == '"\\ufffd\\ufffd\\ufffd"'
