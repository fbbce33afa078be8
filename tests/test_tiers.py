"""The test tiers (tests/conftest.py): every test module has one, pyproject.toml registers each
tier, and `make test-fast` selects the fast ones."""

from __future__ import annotations

from pathlib import Path

import tomllib
from conftest import MODULE_TIERS, TIERS

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_module_has_a_tier():
    modules = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    assert modules - set(MODULE_TIERS) == set(), "add them to MODULE_TIERS in tests/conftest.py"
    assert set(MODULE_TIERS) - modules == set(), "MODULE_TIERS names modules that are gone"
    assert set(MODULE_TIERS.values()) <= set(TIERS)


def test_pyproject_registers_every_tier():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    registered = {m.split(":")[0] for m in options["ini_options"]["markers"]}
    assert set(TIERS) <= registered


def test_make_test_fast_runs_the_fast_tiers():
    makefile = (ROOT / "Makefile").read_text()
    assert '-m "static or unit or engine"' in makefile
