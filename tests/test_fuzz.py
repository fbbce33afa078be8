"""Property-based fuzzing (hypothesis) of what users hand to stars_cpp.

For every target only typed errors may come out (a StarsError subclass, or the exception a
user's own reward raised), never a crash, a hang, or a builtin TypeError/UnicodeError from the
binding layer; and the engine keeps working after each case. The runs are derandomized (fixed
seeds), so CI sees the same cases every time, and sized to stay well under 2 minutes in all.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stars_cpp
from stars_cpp import cli
from stars_cpp.settings import DEFAULT_PARAMS

FUZZ = settings(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _length_reward(prompts, responses):
    return [float(len(r) % 7) for r in responses]


@pytest.fixture(scope="module")
def engine(tiny_llama):
    return stars_cpp.Engine(str(tiny_llama), _length_reward, n_ctx=512)


def _still_works(engine) -> None:
    result = engine.generate("hello", mode="stars", max_tokens=4, segment_tokens=2, seed=1)
    assert len(result.tokens) == 4


# Values of every type, the edges of each range included.
ANY_VALUE = st.one_of(
    st.none(), st.booleans(),
    st.integers(-3, 12), st.integers(min_value=2**31 - 2, max_value=2**70),
    st.integers(min_value=-2**70, max_value=-2**31),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["auto", "soft", "hard", "fixed", "adaptive"]),
    st.lists(st.text(max_size=4), max_size=3), st.binary(max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just(object()),
    st.just(np.int64(3)), st.just(np.float32(0.5)),
)
# Keep valid runs short: a valid max_tokens is small; anything else is an error anyway.
MAX_TOKENS = st.one_of(st.integers(1, 10), ANY_VALUE)
PARAMS = st.fixed_dictionaries(
    {"max_tokens": MAX_TOKENS},
    optional={**{name: ANY_VALUE for name in DEFAULT_PARAMS if name != "max_tokens"},
              "no_such_parameter": ANY_VALUE})
MODES = st.one_of(st.sampled_from(["plain", "best_of_n", "stars"]), ANY_VALUE)

counts: dict[str, int] = {}


def _typed(error: BaseException) -> bool:
    return isinstance(error, stars_cpp.StarsError)


@settings(FUZZ, max_examples=1500)
@given(mode=MODES, params=PARAMS)
def test_fuzz_generate_parameters(engine, mode, params):
    counts["parameters"] = counts.get("parameters", 0) + 1
    # Valid but costly combinations are bounded, not refused: a few candidates and attempts.
    for name, cap in (("candidates", 6), ("max_attempts", 6), ("segment_tokens", 8)):
        if type(params.get(name)) is int and params[name] > cap:
            params[name] = cap
    try:
        result = engine.generate("fuzz", mode=mode, **params)
    except Exception as error:
        assert _typed(error), f"{type(error).__name__}: {error}"
    else:
        assert len(result.tokens) <= 10
    _still_works(engine)


TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)  # surrogates too
MESSAGE = st.fixed_dictionaries(
    {}, optional={"role": st.one_of(st.sampled_from(["user", "system", "assistant", "tool"]),
                                    TEXT, ANY_VALUE),
                  "content": st.one_of(TEXT, ANY_VALUE), "name": TEXT})
PROMPT = st.one_of(
    TEXT,
    st.lists(MESSAGE, max_size=4),
    st.lists(st.one_of(TEXT, MESSAGE), min_size=1, max_size=3),
    st.just("x" * 20000), st.just(""), st.just([]), st.just("\x00\x01\x7f\ud800"),
    ANY_VALUE,
)


@settings(FUZZ, max_examples=1500)
@given(prompt=PROMPT)
def test_fuzz_prompts(engine, prompt):
    counts["prompts"] = counts.get("prompts", 0) + 1
    try:
        out = engine.generate(prompt, mode="plain", max_tokens=3, seed=0)
    except Exception as error:
        assert _typed(error), f"{type(error).__name__}: {error}"
    else:
        results = out if isinstance(out, list) else [out]
        assert all(len(r.tokens) <= 3 for r in results)
    _still_works(engine)


class OwnError(Exception):
    """What a user's reward raises itself: it reaches the caller unchanged."""


ODD_RETURNS = st.one_of(
    st.none(), st.text(max_size=5), st.integers(), st.floats(allow_nan=True),
    st.just([math.inf]), st.just([math.nan]), st.just(np.zeros((2, 2))),
    st.just(np.zeros(0)), st.just(np.ones(3, dtype=np.float32)), st.just(["1.0"]),
    st.just([None]), st.just(list(range(100000))), st.just({"a": 1}), st.just(iter([1.0])),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12), st.just(OwnError),
)


@settings(FUZZ, max_examples=400)
@given(returned=ODD_RETURNS, mode=st.sampled_from(["best_of_n", "stars"]))
def test_fuzz_reward_returns(tiny_model, returned, mode):
    counts["rewards"] = counts.get("rewards", 0) + 1

    healed = []

    def reward(prompts, responses):
        if healed:  # after the odd case: a valid reward, to show the engine still works
            return [0.0] * len(responses)
        if returned is OwnError:
            raise OwnError("the user's reward failed")
        return returned

    engine = stars_cpp.Engine(tiny_model, reward, n_ctx=256)
    try:
        result = engine.generate("hi", mode=mode, max_tokens=4, segment_tokens=2, seed=0)
    except OwnError:
        pass
    except Exception as error:
        assert _typed(error), f"{type(error).__name__}: {error}"
    else:
        assert len(result.tokens) == 4
    healed.append(True)
    assert len(engine.generate("hi", mode=mode, max_tokens=2, seed=0).tokens) == 2


FLAG_VALUES = st.one_of(st.sampled_from(["0", "1", "-1", "4", "auto", "nan", "inf", "1e309",
                                         "soft", "fixed", "x", "", "99999999999"]), TEXT)
FLAGS = ["--mode", "--segment-tokens", "--candidates", "--max-attempts", "--max-tokens",
         "--threshold", "--alpha", "--beta", "--temperature", "--top-k", "--top-p", "--min-p",
         "--acceptance", "--width", "--seed", "--stop", "--n-ctx", "--reward", "--judge-yes",
         "--n-threads", "--bogus"]


@settings(FUZZ, max_examples=300)
@given(flags=st.lists(st.tuples(st.sampled_from(FLAGS), FLAG_VALUES), max_size=4),
       extra=st.lists(st.sampled_from(["--json", "--raw", "--verbose", "-vv", "x"]), max_size=2))
def test_fuzz_cli_arguments(tiny_llama, capsys, flags, extra):
    counts["cli"] = counts.get("cli", 0) + 1
    argv = ["generate", "hi", "--model", str(tiny_llama), "--max-tokens", "3", "--n-ctx", "256",
            "--reward", "none", "--mode", "plain"]
    for flag, value in flags:
        argv += [flag, value]
    argv += extra
    try:
        code = cli.main([a.replace("\x00", "") for a in argv])  # argv never holds a NUL
    except SystemExit as exit_:  # only --help exits this way
        code = exit_.code
    out, err = capsys.readouterr()
    assert code in (0, 2), (argv, err)  # 1 would be an unexpected failure
    assert "Traceback" not in err, err
    if code != 0:
        assert len(err.strip().splitlines()) == 1, err  # one line, naming the problem
