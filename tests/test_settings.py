"""One table of settings (cpp/src/param_spec.cc): every front end takes its defaults, ranges and
names from it. Each test enumerates the table, so a new setting is covered without editing
them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from test_stars_cli import STARS_CLI

import stars_cpp
from stars_cpp import _core, cli, server, settings
from stars_cpp.settings import PARAMS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stars_cli() -> str:
    assert STARS_CLI.is_file(), f"{STARS_CLI} is missing: run make native (make test does)"
    return str(STARS_CLI)
COMMANDS = ("generate", "serve", "run")


def _subparser(command: str):
    parser = cli.build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices[command]


def _flag_default(command: str, name: str):
    return _subparser(command).get_default(name)


def test_python_defaults_are_the_tables():
    made = _core.GenerationParams.make({}).to_dict()
    for name in settings.GENERATION:
        assert made[name] == PARAMS[name]["default"], name


def test_engine_defaults_are_the_tables(tiny_llama):
    with stars_cpp.Engine(str(tiny_llama)) as engine:
        for name in settings.names("engine", "python"):
            assert engine.settings[name] == PARAMS[name]["default"], name


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_defaults_are_the_tables(command):
    for name in settings.names(front_end=command):
        expected = PARAMS[name]["serve_default" if command == "serve" else "default"]
        assert _flag_default(command, name) == expected, (command, name)
    # Every flag of the parameters and options is one of the table's: none is declared twice.
    dests = {a.dest for a in _subparser(command)._actions}
    assert set(settings.names(front_end=command)) <= dests


def test_server_defaults_are_the_tables():
    defaults = {n: _flag_default("serve", n) for n in settings.GENERATION}
    job = server.parse_job({"prompt": "hi"}, False, defaults, "m")
    assert job.mode == PARAMS["mode"]["default"]
    for name in settings.GENERATION:
        if name != "mode":
            assert job.params[name] == PARAMS[name]["default"], name
    assert set(settings.names("generation", "http")) <= server.KNOWN_FIELDS


def test_native_cli_defaults_are_the_tables(stars_cli):
    done = subprocess.run([stars_cli, "settings"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert set(shown) == set(settings.names(front_end="stars-cli"))
    for name, text in shown.items():
        assert text == PARAMS[name]["default_text"], name


def test_generated_files_are_current():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "generate.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    readme = (ROOT / "README.md").read_text()
    assert "docs/parameters.md" in readme and "docs/errors.md" in readme


def test_typed_keywords_list_every_python_setting():
    from typing import get_type_hints

    from stars_cpp import params

    assert list(get_type_hints(params.GenerationParams)) == settings.names("generation",
                                                                             "python")
    assert list(get_type_hints(params.EngineOptions)) == settings.names("engine", "python")


# ---------------------------------------------------------------------------------------------
# A value outside the range, on every front end.


def _bad_values(name: str) -> list:
    """Values the table refuses for ``name``: past each bound, an unknown choice, and so on."""
    entry = PARAMS[name]
    kind, low, high = entry["type"], entry["min"], entry["max"]
    if entry["choices"]:
        return ["nonsense"]
    if kind == "list[str]":
        return [[""]]
    if kind == "seed":
        return [-1]
    if kind == "bool":
        return ["maybe"]
    if kind == "str":
        return ["nonsense:x"] if name == "reward" else []
    out = []
    step = 1 if kind == "int" else 0.5
    if low is not None:
        out.append(low if entry["min_exclusive"] else low - step)
    if high is not None:
        out.append(high if entry["max_exclusive"] else high + step)
    if kind != "int" and not out:
        out.append(math.inf)
    return [int(v) if kind == "int" else float(v) for v in out]


CASES = [(name, value) for name in PARAMS for value in _bad_values(name)]


def _text(value) -> str:
    return "" if value == [""] else str(value)


@pytest.fixture(scope="module")
def engine(tiny_llama):
    with stars_cpp.Engine(str(tiny_llama), n_ctx=512) as engine:
        yield engine


@pytest.mark.parametrize("name, value", [c for c in CASES if "python" in PARAMS[c[0]]
                                         ["front_ends"]])
def test_python_refuses_naming_the_parameter(engine, tiny_llama, name, value):
    with pytest.raises(stars_cpp.ParameterError) as raised:
        if PARAMS[name]["group"] == "generation":
            engine.generate("hi", **{name: value})
        else:
            stars_cpp.Engine(str(tiny_llama), **{name: value})
    assert raised.value.param == name, raised.value


@pytest.mark.parametrize("command", COMMANDS)
def test_clis_refuse_with_exit_2_naming_the_parameter(command, tiny_llama, tmp_path, capsys):
    records = tmp_path / "in.jsonl"
    records.write_text('{"id": 1, "prompt": "hi"}\n')
    for name, value in CASES:
        if command not in PARAMS[name]["front_ends"]:
            continue
        head = {"generate": ["generate", "hi"], "serve": ["serve", "--port", "0"],
                "run": ["run", str(records), "-o", str(tmp_path / "out.jsonl")]}[command]
        argv = [*head, "--model", str(tiny_llama), "--mode", "plain",
                f"--{name.replace('_', '-')}={_text(value)}"]
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert name.replace("_", "-") in err or name in err, (argv, err)
        assert not (tmp_path / "out.jsonl").exists()


def test_stars_cli_refuses_with_exit_2_naming_the_parameter(stars_cli, tiny_llama):
    for name, value in CASES:
        if "stars-cli" not in PARAMS[name]["front_ends"]:
            continue
        command = ["generate", "hi", "--model", str(tiny_llama)] if name == "reward" else [
            "settings"]
        argv = [stars_cli, *command, f"--{name}={_text(value)}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (argv, done.stderr)
        assert name in done.stderr and len(done.stderr.splitlines()) == 1, (argv, done.stderr)


def test_http_refuses_with_400_and_param(tiny_llama):
    from test_server import launch, post

    proc, port = launch(tiny_llama)
    try:
        for name, value in CASES:
            if "http" not in PARAMS[name]["front_ends"]:
                continue
            status, body = post(port, "/v1/completions",
                                {"prompt": "hi", "max_tokens": 2, name: value})
            assert status == 400, (name, value, body)
            assert body["error"]["param"] == name, (name, value, body)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# ---------------------------------------------------------------------------------------------
# run --ray: every option reaches the workers.


def _non_default(name: str):
    """A valid value other than the default, for each setting the Ray workers take."""
    entry = PARAMS[name]
    kind, value = entry["type"], entry["default"]
    if entry["choices"]:
        return next(c for c in entry["choices"] if c != value)
    if kind in ("int", "float"):
        step = 1 if kind == "int" else 0.25
        high = entry["max"]
        return value + step if high is None or value + step <= high else value - step
    return {"float|auto": 0.75, "seed": 7, "list[str]": ["END"], "bool": True,
            "str": "judge:policy" if name == "reward" else "x"}[kind]


def test_run_ray_passes_every_setting_to_the_workers(tiny_llama, tmp_path, monkeypatch):
    import stars_cpp.ray as stars_ray

    given = {name: _non_default(name) for name in settings.names(front_end="ray")}
    given["mode"] = "stars"
    given["kv_type"] = "f32"  # q8_0 blocks do not divide the tiny model's heads
    given["judge_yes"], given["judge_no"] = " yes", " no"  # one token each of the tiny model
    argv = ["run", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"), "--ray",
            "--model", str(tiny_llama)]
    for name, value in given.items():
        for item in value if isinstance(value, list) else [value]:
            argv.append(f"--{name}={item}")
    (tmp_path / "in.jsonl").write_text('{"id": 1, "prompt": "hi"}\n')
    seen = {}

    def fake_run(input_path, output_path, **kwargs):
        seen.update(kwargs)
        return iter(())

    monkeypatch.setattr(stars_ray, "run", fake_run)
    assert cli.main(argv) == 0
    engine_side = seen["engine_settings"]
    for name in settings.names(front_end="ray"):
        where = seen["params"] if PARAMS[name]["group"] == "generation" else engine_side
        if name == "mode":
            assert seen["mode"] == given[name]
        else:
            assert where[name] == given[name], name

    # The worker builds its Engine with every engine option it was handed.
    built = {}

    class Spy(stars_cpp.Engine):
        def __init__(self, model, reward=None, **options):
            built.update(options, reward=reward)
            super().__init__(model, reward, **options)

    monkeypatch.setattr(stars_cpp, "Engine", Spy)
    actor = stars_ray._EngineActor(str(tiny_llama), engine_side, "stars", seen["params"], False)
    try:
        for name in settings.names("engine", "ray"):
            assert built[name] == given[name], name
        assert type(built["reward"]).__name__ == "SpecReward"
        assert built["reward"].values["judge_question"] == given["judge_question"]
    finally:
        actor.engine.close()


def test_errors_carry_their_field_and_map_through_one_table(tiny_llama):
    entries = {e["name"]: e for e in _core.ERROR_CLASSES}
    for cls in (stars_cpp.ParameterError, stars_cpp.DatasetError, stars_cpp.QueueFullError,
                stars_cpp.EngineClosedError, stars_cpp.ModelNotFoundError, stars_cpp.DecodeError):
        entry = stars_cpp.errors.error_class(cls("x"))
        assert entry is entries[cls.__name__] or entry == entries[cls.__name__]
    assert stars_cpp.errors.error_class(KeyError("x"))["exit_code"] == 1
    assert server.error_of(stars_cpp.QueueFullError("busy")).status == 503
    error = server.error_of(stars_cpp.ParameterError("top_k must be >= 0", "top_k"))
    assert (error.status, error.param) == (400, "top_k")
    assert json.loads(json.dumps(error.body()))["error"]["param"] == "top_k"
