"""Every bench script imports: a bench that is run once a week must not find its imports broken
(two did, after the quality bench moved its data to bench/quality_tasks.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_a_bench_script_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{script[:-3]}", BENCH / script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # top-level imports only: main() runs under __main__
    if "__main__" in (BENCH / script).read_text():  # a script, not a library of the benches
        assert callable(getattr(module, "main", None)), f"{script} has no main()"
