"""Every setting, from the core's one table (``_core.PARAMS``, declared in
``cpp/src/param_spec.cc``): the generation parameters, the engine's options and the reward spec's
options, each with its type, default, range or choices, help and the front ends that take it.

The Python defaults and keyword checks, the argparse flags of ``generate``, ``serve`` and
``run``, the server's accepted fields, the Ray workers' arguments, a dataset run's recorded
settings, ``stars_cpp/params.py`` (the typed keywords) and docs/parameters.md all come from here
(``make generated`` rewrites the generated files; a test checks them).
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Mapping
from typing import Any

from stars_cpp import _core
from stars_cpp.errors import ParameterError

# name -> {"name", "group", "type", "default", "default_text", "serve_default", "choices",
# "min", "max", "rule", "help", "front_ends", "changes_output"}
PARAMS: dict[str, dict[str, Any]] = {entry["name"]: entry for entry in _core.PARAMS}


def names(group: str | None = None, front_end: str | None = None) -> list[str]:
    """The settings of ``group`` ("generation", "engine", "reward") taken by ``front_end``
    ("python", "generate", "serve", "run", "http", "stars-cli", "ray"), in table order."""
    return [name for name, p in PARAMS.items()
            if (group is None or p["group"] == group)
            and (front_end is None or front_end in p["front_ends"])]


GENERATION = names("generation")
ENGINE = names("engine")
REWARD = names("reward")
# The generation parameters but mode (a keyword of its own), with their defaults; a seed of None
# draws a random one.
DEFAULT_PARAMS: dict[str, Any] = {n: PARAMS[n]["default"] for n in GENERATION if n != "mode"}


def default(name: str, front_end: str | None = None) -> Any:
    """A setting's default, on ``front_end`` where it has its own (serve)."""
    entry = PARAMS[name]
    return entry["serve_default"] if front_end == "serve" else entry["default"]


def choices(name: str) -> tuple[str, ...]:
    return tuple(PARAMS[name]["choices"])


def check(values: Mapping[str, Any], groups: tuple[str, ...] = ("generation", "engine",
                                                                  "reward")) -> None:
    """Checks names, types and ranges of settings of ``groups`` without making anything (the
    core's checks): ParameterError naming the first bad or unknown one."""
    _core.check_settings(dict(values), list(groups))


def output_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The engine and reward settings among ``values`` that a response's text can depend on,
    by name: what a dataset run records and checks on resume. The reward spec and the
    generation parameters are recorded on their own."""
    return {name: values[name] for name in (*ENGINE, *REWARD)
            if name in values and name != "reward" and PARAMS[name]["changes_output"]}


# ---------------------------------------------------------------------------------------------
# argparse


def _cli_value(name: str):
    """argparse's ``type=``: the core's own text parser, so both CLIs read a flag alike."""
    def parse(text: str) -> Any:
        try:
            return _core.parse_param_text(name, text)
        except ParameterError:  # argparse's words, the value as repr() shows it
            raise argparse.ArgumentTypeError(
                f"invalid {PARAMS[name]['type']} value: {text!r}") from None
    parse.__name__ = PARAMS[name]["type"]
    return parse


def add_flags(parser: argparse.ArgumentParser, front_end: str, groups: tuple[str, ...]) -> None:
    """One flag per setting of ``groups`` that ``front_end`` takes: --name-with-dashes and
    --name_as_in_python, the default and help from the table."""
    for name in names(front_end=front_end):
        entry = PARAMS[name]
        if entry["group"] not in groups:
            continue
        flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        value = default(name, front_end)
        shown = entry["default_text"] if front_end != "serve" else _text(value)
        kwargs: dict[str, Any] = {"dest": name, "default": value, "type": _cli_value(name),
                                  "help": f"{entry['help']} (default {shown})"}
        if entry["choices"]:
            kwargs["choices"] = entry["choices"]
        if entry["type"] == "list[str]":  # one item per flag
            kwargs.update(action="append", default=[], metavar="STR", type=str)
        elif entry["type"] == "bool":  # --logprobs alone is true, as in stars-cli
            kwargs.update(nargs="?", const=True, metavar="true|false")
        parser.add_argument(*flags, **kwargs)


def _text(value: Any) -> str:
    return "random" if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# Generated files: stars_cpp/params.py (typed keywords) and docs/parameters.md.

_PY_TYPES = {"int": "int", "float": "float", "float|auto": "float | Literal['auto']",
             "str": "str", "list[str]": "str | Sequence[str]", "seed": "int | None",
             "bool": "bool"}


def _py_type(entry: Mapping[str, Any]) -> str:
    if entry["choices"]:
        return "Literal[" + ", ".join(repr(c) for c in entry["choices"]) + "]"
    return _PY_TYPES[entry["type"]]


def params_py() -> str:
    """stars_cpp/params.py: the keywords of Engine.generate, stream and submit, and of Engine,
    as TypedDicts (PEP 692), so that type checkers and IDEs see each one."""
    out = ['"""The keyword parameters of the public API, typed. Generated from the core\'s table',
           "by ``make generated``: do not edit (tests/test_settings.py checks it).",
           '"""', "", "from __future__ import annotations", "",
           "from collections.abc import Sequence", "from typing import Literal, TypedDict", ""]
    for cls, group, doc in (
            ("GenerationParams", "generation", "Engine.generate, stream and submit's keywords."),
            ("EngineOptions", "engine", "Engine's keywords (beside model, reward, seed, "
             "verbose).")):
        out += ["", f"class {cls}(TypedDict, total=False):", f'    """{doc}"""', ""]
        for name in names(group, "python"):
            entry = PARAMS[name]
            out.append(f"    {name}: {_py_type(entry)}")
            doc = f'"""{entry["help"]}. Default {entry["default_text"]}; {entry["rule"]}."""'
            out += textwrap.wrap(doc, 96, initial_indent="    ", subsequent_indent="    ",
                                 break_on_hyphens=False)
    out += ["", "", "class GenerateOptions(GenerationParams, EngineOptions, total=False):",
            '    """stars_cpp.generate\'s keywords: an Engine\'s options and the generation',
            '    parameters."""']
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def parameters_md() -> str:
    """docs/parameters.md: the table of every setting."""
    out = ["# Parameters", "",
           "Generated from the core's table (`cpp/src/param_spec.cc`) by "
           "`make generated`; a test checks that it is current. Every name is the "
           "same in Python, on both command lines (`--name` or `--name-with-dashes`), in JSON "
           "and over HTTP. A value outside its range is refused before anything is decoded: "
           "`ParameterError` with `.param` set to the name, exit status 2, or HTTP 400 with "
           "`error.param`.", ""]
    titles = {"generation": "Generation parameters (per request)",
              "engine": "Engine options (per Engine)",
              "reward": "Reward options (command lines)"}
    for group, title in titles.items():
        out += [f"## {title}", "",
                "| name | default | range | meaning | front ends |", "|---|---|---|---|---|"]
        for name in names(group):
            entry = PARAMS[name]
            shown = f"`{entry['default_text']}`"
            if entry["serve_default"] != entry["default"]:
                shown += f" (serve: `{_text(entry['serve_default'])}`)"
            out.append(f"| `{name}` | {_cell(shown)} | {_cell(entry['rule'])} | "
                       f"{_cell(entry['help'])} | {', '.join(entry['front_ends'])} |")
        out.append("")
    return "\n".join(out)
