"""The documentation: README.md fits a screen, every relative link in README.md and docs/*.md
resolves (its #anchor to a heading of the target), and every code block whose fence reads
```python runnable runs, on the packaged SmolLM2."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

FENCE = re.compile(r"^(```+|~~~+)(.*)$")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def _blocks(text: str) -> tuple[list[tuple[str, str, int]], str]:
    """The fenced code blocks of ``text`` as (info string, code, first line number), and the
    text outside them."""
    blocks, prose, lines = [], [], text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        fence, info, start = m.group(1), m.group(2).strip(), i + 1
        i += 1
        code = []
        while i < len(lines) and not lines[i].startswith(fence):
            code.append(lines[i])
            i += 1
        i += 1  # the closing fence
        blocks.append((info, "\n".join(code) + "\n", start + 1))
    return blocks, "\n".join(prose)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to
    hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    _, prose = _blocks(path.read_text())
    seen: dict[str, int] = {}
    out = set()
    for line in prose.splitlines():
        m = HEADING.match(line)
        if not m:
            continue
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _links(path: Path) -> list[str]:
    _, prose = _blocks(path.read_text())
    prose = re.sub(r"`[^`\n]*`", "", prose)  # inline code is not a link
    return [target for target in LINK.findall(prose)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]  # http:, mailto:, ...


def test_readme_fits_a_screen():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert broken == [], broken


def test_the_slugs_are_githubs():
    assert _slug("llama.cpp's log") == "llamacpps-log"
    assert _slug("Edge (measured 2026-12-02)") == "edge-measured-2026-12-02"
    assert _slug("Causal reward models: `convert-reward`") == "causal-reward-models-convert-reward"
    assert _slug("Rounds, calibration and defaults (measured 2026-12-01)") == (
        "rounds-calibration-and-defaults-measured-2026-12-01")


def test_performance_tables_are_what_bench_report_renders():
    # bench/report.py --docs writes them between its markers in docs/performance.md.
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    text = (ROOT / "docs" / "performance.md").read_text()
    assert f"{report.BEGIN}\n{report.render()}{report.END}" in text


RUNNABLE = [(page, line, code) for page in PAGES
            for info, code, line in _blocks(page.read_text())[0]
            if info.split()[:1] == ["python"] and "runnable" in info.split()[1:]]


def test_the_runnable_examples_are_marked():
    where = {page.name for page, _, _ in RUNNABLE}
    assert "README.md" in where, "the README's Python example must be runnable"
    assert len(where) >= 2, where


@pytest.mark.real  # the package and SmolLM2, in a subprocess
@pytest.mark.timeout(120)
@pytest.mark.parametrize("page,line,code", RUNNABLE,
                         ids=[f"{p.relative_to(ROOT).as_posix()}:{n}" for p, n, _ in RUNNABLE])
def test_runnable_example_runs(page, line, code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code)
    # The installed package, not the source tree. Passive OpenMP threads: on a machine that
    # other processes keep busy, llama.cpp's spinning threads slow a decode many times over.
    env = {**os.environ, "PYTHONPATH": "",
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "passive")}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, (
        f"{page.name}:{line} exited {done.returncode}\n{done.stdout[-2000:]}\n"
        f"{done.stderr[-4000:]}")
