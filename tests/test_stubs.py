"""The shipped typed stubs of the extension and its testing submodule match what nanobind
generates from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import stars_cpp


def test_core_stubs_are_current(tmp_path):
    shipped = Path(stars_cpp.__file__).with_name("_core")
    names = ["__init__.pyi", "testing.pyi"]
    for name in names:
        assert (shipped / name).exists(), f"stars_cpp/_core/{name} is not installed"
    subprocess.run([sys.executable, "-m", "nanobind.stubgen", "-q", "-r", "-m", "stars_cpp._core",
                    "-O", str(tmp_path)], check=True, cwd=tmp_path)
    generated = sorted(p.name for p in (tmp_path / "_core").iterdir())
    assert generated == names, "the extension's submodules changed: update this test"
    for name in names:
        assert (tmp_path / "_core" / name).read_text() == (shipped / name).read_text(), \
            f"stale stub {name}: run `make stubs`"
