"""Bad inputs raise specific exceptions that name the problem; the process keeps working."""

from __future__ import annotations

import os

import pytest

import stars_cpp


def _still_works(tiny_llama) -> None:
    result = stars_cpp.Engine(str(tiny_llama), n_ctx=256).generate(
        "hello", mode="plain", max_tokens=4, seed=1)
    assert len(result.tokens) == 4


def test_missing_path(tmp_path, tiny_llama):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(stars_cpp.ModelNotFoundError, match="not found.*nope.gguf") as info:
        stars_cpp.Engine(str(missing))
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, stars_cpp.StarsError)
    _still_works(tiny_llama)


def test_not_a_gguf(tmp_path, tiny_llama):
    path = tmp_path / "notes.gguf"
    path.write_text("this is a text file, not a model\n")
    with pytest.raises(stars_cpp.ModelLoadError, match="not a GGUF.*notes.gguf"):
        stars_cpp.Engine(str(path))
    _still_works(tiny_llama)


def test_empty_file(tmp_path, tiny_llama):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(stars_cpp.ModelLoadError, match="empty.*empty.gguf"):
        stars_cpp.Engine(str(path))
    _still_works(tiny_llama)


def test_truncated_gguf(tmp_path, tiny_llama):
    path = tmp_path / "truncated.gguf"
    path.write_bytes(tiny_llama.read_bytes()[:4096])
    with pytest.raises(stars_cpp.ModelLoadError,
                       match="truncated.gguf. is not a readable GGUF file: its header is"):
        stars_cpp.Engine(str(path))
    _still_works(tiny_llama)


def test_directory_path(tmp_path, tiny_llama):
    with pytest.raises(stars_cpp.ModelLoadError, match="directory"):
        stars_cpp.Engine(str(tmp_path))
    _still_works(tiny_llama)


def test_prompt_longer_than_context(tiny_llama):
    engine = stars_cpp.Engine(str(tiny_llama), n_ctx=64)
    with pytest.raises(stars_cpp.ContextLengthError, match=r"prompt 0 is \d+ tokens.*n_ctx=64"):
        engine.generate("the cat sat on the mat " * 40, mode="plain", max_tokens=4)
    # A prompt that fits, but not with max_tokens on top, names both.
    with pytest.raises(stars_cpp.ContextLengthError, match="max_tokens=60.*n_ctx=64"):
        engine.generate("the cat sat on the mat", mode="plain", max_tokens=60)
    assert isinstance(stars_cpp.ContextLengthError("x"), ValueError)
    result = engine.generate("the cat sat on the mat", mode="plain", max_tokens=8, seed=3)
    assert len(result.tokens) == 8


def test_model_of_wrong_type():
    with pytest.raises(ValueError, match="model must be a GGUF path or a llama_cpp.Llama"):
        stars_cpp.Engine(42)


def test_one_exception_tree():
    from stars_cpp import _core, errors

    expected = {
        "ModelLoadError": ValueError, "ModelNotFoundError": FileNotFoundError,
        "ContextLengthError": ValueError, "ParameterError": ValueError,
        "DatasetError": ValueError, "ChatTemplateError": ValueError,
        "DecodeError": RuntimeError, "ReentrantCallError": RuntimeError,
        "EngineClosedError": RuntimeError, "ConversionError": RuntimeError,
        "SourceNotFoundError": FileNotFoundError, "RewardError": Exception,
        "QueueFullError": Exception, "StarsError": Exception,
    }
    assert sorted(n for n in errors.__all__ if n.endswith("Error")) == sorted(expected)
    for name, builtin in expected.items():
        cls = getattr(stars_cpp, name)
        assert cls is getattr(errors, name)
        assert issubclass(cls, stars_cpp.StarsError) and issubclass(cls, builtin), name
    # The extension defines none of its own: it raises the classes of stars_cpp.errors.
    assert not [n for n in dir(_core) if n.endswith("Error")]


def test_errors_raised_in_cpp_and_in_python_are_one_class(tiny_llama, tiny_bert):
    engine = stars_cpp.Engine(str(tiny_llama), n_ctx=256)
    with pytest.raises(stars_cpp.ParameterError) as from_cpp:  # GenerationParams::Validate
        engine.generate("hi", mode="plain", candidates=0)
    with pytest.raises(stars_cpp.ParameterError) as from_python:  # build_params
        engine.generate("hi", mode="plain", nonsense=1)
    assert type(from_cpp.value) is type(from_python.value) is stars_cpp.ParameterError
    # Python-side checks that raised plain ValueError before.
    from stars_cpp.rewards import reward_from_settings

    with pytest.raises(stars_cpp.ParameterError, match="MODULE:FUNCTION"):
        reward_from_settings({"reward": "python:nocolon"})
    with pytest.raises(stars_cpp.ParameterError, match="not one of this classifier's labels"):
        stars_cpp.ClassifierReward(str(tiny_bert), label="no-such-label")


def test_huge_sizes_raise_parameter_error(tiny_llama, tiny_bert):
    # Found by the CLI fuzzer: --n-ctx 99999999999 was nanobind's TypeError, naming nothing.
    for kwargs in ({"n_ctx": 99999999999}, {"n_threads": 2**40}, {"max_queue": -2**40}):
        name = next(iter(kwargs))
        with pytest.raises(stars_cpp.ParameterError, match=name):
            stars_cpp.Engine(str(tiny_llama), **kwargs)
    with pytest.raises(stars_cpp.ParameterError, match="n_ctx"):
        stars_cpp.JudgeReward(str(tiny_llama), n_ctx=2**40)
    with pytest.raises(stars_cpp.ParameterError, match="n_gpu_layers"):
        stars_cpp.ClassifierReward(str(tiny_bert), n_gpu_layers=2**40)


def test_text_that_is_not_utf8_raises_parameter_error(tiny_llama):
    # Found by the prompt fuzzer: a lone surrogate was std::bad_cast as a RuntimeError.
    engine = stars_cpp.Engine(str(tiny_llama), n_ctx=256)
    cases = [("bad \ud800", {}), ([{"role": "user", "content": "x\udfff"}], {}),
             ("fine", {"stop": ["\ud83d"]}), ("fine", {"keys": ["\udc80"]})]
    for prompt, kwargs in cases:
        with pytest.raises(stars_cpp.ParameterError, match="not valid text"):
            engine.generate(prompt, mode="plain", max_tokens=2, **kwargs)
    _still_works(tiny_llama)


def test_detokenize_refuses_ids_outside_the_vocabulary(tiny_llama):
    # llama.cpp indexes its vocabulary with the id unchecked (std::out_of_range at best).
    model = stars_cpp.Engine(str(tiny_llama), n_ctx=256).model
    for bad in (model.n_vocab, -1, 2**31 - 1):
        with pytest.raises(stars_cpp.ParameterError, match=f"token id {bad} is outside"):
            model.detokenize([1, bad])
    tokens = model.tokenize("hello world", add_special=False)
    assert model.detokenize(tokens) == "hello world"


def test_thread_counts_are_bound_to_the_machine(tiny_llama, tiny_bert):
    # Once, n_threads=100000 made libgomp exit the process (or segfault).
    cores = os.cpu_count()
    for n in (100_000, cores + 1, -1):
        with pytest.raises(stars_cpp.ParameterError, match=rf"n_threads must be in \[0, {cores}\]"):
            stars_cpp.Engine(str(tiny_llama), n_threads=n)
        with pytest.raises(stars_cpp.ParameterError, match="n_threads"):
            stars_cpp.Engine(str(tiny_llama), stars_cpp.JudgeReward("policy"), n_threads=n)
        with pytest.raises(stars_cpp.ParameterError, match="n_threads"):
            stars_cpp.Engine(str(tiny_llama), stars_cpp.ClassifierReward(str(tiny_bert)),
                             n_threads=n)
    # 0, as None, is every hardware thread, in Python as in stars-cli.
    engine = stars_cpp.Engine(str(tiny_llama), n_threads=0)
    assert len(engine.generate("hi", mode="plain", max_tokens=2).tokens) == 2
