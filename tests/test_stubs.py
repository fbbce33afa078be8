"""The shipped typed stubs of the extension match what nanobind generates from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import stars_cpp


def test_core_stub_is_current(tmp_path):
    shipped = Path(stars_cpp.__file__).with_name("_core.pyi")
    assert shipped.exists(), "stars_cpp/_core.pyi is not installed with the package"
    out = tmp_path / "_core.pyi"
    subprocess.run([sys.executable, "-m", "nanobind.stubgen", "-q", "-m", "stars_cpp._core",
                    "-o", str(out)], check=True, cwd=tmp_path)
    assert out.read_text() == shipped.read_text(), "stale stub: run `make stubs`"
