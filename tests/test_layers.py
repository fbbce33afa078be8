"""The layering of cpp/, read off the sources: every llama_* call lives in the llama layer, the
algorithm and the Result serializer never see llama.h, and the public headers, the bindings
and the native CLI include only the public headers (cpp/include/stars) and files of their own
folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CPP = Path(__file__).resolve().parents[1] / "cpp"
QUOTED_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
LLAMA_CALL = re.compile(r"\bllama_[a-z0-9_]+\s*\(")


def _sources(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".h", ".cc"))
    assert files, f"no sources under {folder}"
    return files


def _includes(path: Path) -> list[str]:
    return QUOTED_INCLUDE.findall(path.read_text())


def _code(path: Path) -> str:
    """The file without its comments (a comment may name a llama_* function)."""
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", path.read_text(), flags=re.S)


def test_llama_calls_live_in_the_llama_layer():
    outside = [f"{p.relative_to(CPP)}: {m.group(0)}" for p in _sources(CPP)
               if "src/llama" not in p.as_posix() for m in LLAMA_CALL.finditer(_code(p))]
    assert outside == []


def test_the_algorithm_never_includes_llama():
    for path in _sources(CPP / "src" / "algorithm"):
        assert all(not inc.startswith(("llama", "reward/", "engine/"))
                   for inc in _includes(path)), path


@pytest.mark.parametrize("folder", ["include", "python", "cli"])
def test_public_side_includes_only_public_headers(folder):
    public = {p.relative_to(CPP / "include").as_posix() for p in _sources(CPP / "include")}
    for path in _sources(CPP / folder):
        own = {p.name for p in path.parent.iterdir()}
        for inc in _includes(path):
            assert inc in public or inc in own, f"{path.relative_to(CPP)} includes {inc}"


def test_the_result_serializer_includes_only_public_headers():
    # The Result's JSON and trace: the standard library and the public headers, no llama.h.
    public = {p.relative_to(CPP / "include").as_posix() for p in _sources(CPP / "include")}
    for path in (CPP / "src" / "result_json.cc", CPP / "src" / "json_writer.cc"):
        assert set(_includes(path)) <= public, path
