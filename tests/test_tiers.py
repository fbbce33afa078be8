"""The test tiers (tests/conftest.py): every test module has one, pyproject.toml registers each
tier, and `make test-fast` selects the fast ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
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


def test_make_test_device_is_a_valid_recipe_outside_make_test():
    # -B: every step, as from a clean checkout (else made targets are left out of the dry run).
    dry = subprocess.run(["make", "-n", "-B", "test-device"], cwd=ROOT, capture_output=True,
                         text=True)
    assert dry.returncode == 0, dry.stderr
    for step in ("tools/vulkan_deps.sh", "-DGGML_VULKAN=ON", "GGML_VK_VISIBLE_DEVICES=0",
                 "MESA_SHADER_CACHE_DIR=", "-m device"):
        assert step in dry.stdout, step
    test = subprocess.run(["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    assert "vulkan" not in test.stdout.lower() and "-m device" not in test.stdout


def _collect(*args: str) -> str:
    # The venv's pytest script: `python -m pytest` would put the source tree's stars_cpp (no
    # extension) first on sys.path.
    pytest_script = str(Path(sys.executable).parent / "pytest")
    run = subprocess.run([pytest_script, "--collect-only", "-q", "-p",
                          "no:cacheprovider", *args, "tests/test_device.py"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode in (0, 5), run.stdout + run.stderr  # 5: nothing selected
    return run.stdout


@pytest.mark.unit
def test_the_device_tests_run_only_when_their_marker_is_asked_for():
    device = MODULE_TIERS["test_device"]
    asked = _collect("-m", device)
    collected = [line for line in asked.splitlines() if "test_device.py::" in line]
    assert len(collected) >= 8, asked
    plain = _collect()
    assert "test_device.py::" not in plain and f"{len(collected)} deselected" in plain, plain
