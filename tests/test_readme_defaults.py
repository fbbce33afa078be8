"""The README's parameter table states the defaults that the code has."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import stars_cpp
from stars_cpp.engine import DEFAULT_PARAMS

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_defaults() -> dict[str, str]:
    text = README.read_text()
    table = text.split("### Parameters", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = re.match(r"`(\w+)`", cells[0]).group(1)
        rows[name] = cells[1]
    return rows


def parse(cell: str) -> object:
    cell = cell.strip("`")
    return None if cell == "random" else ast.literal_eval(cell)


def test_the_readme_table_lists_every_parameter_with_its_default():
    rows = readme_defaults()
    assert set(rows) == set(DEFAULT_PARAMS)
    core = stars_cpp._core.GenerationParams()
    for name, cell in rows.items():
        documented = parse(cell)
        assert documented == DEFAULT_PARAMS[name], name
        native = getattr(core, name)
        if documented == "auto":
            assert native is None, name  # the core spells "auto" as None
        elif isinstance(documented, float):
            assert native == pytest.approx(documented, rel=1e-6), name  # float32 in the core
        elif name != "seed":  # the core's seed is a number; None means random in Python
            assert native == documented, name
