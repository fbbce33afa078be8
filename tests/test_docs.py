"""The documentation's references hold: relative links in README.md and docs/ point to files
that exist, and every reference to a README section in the sources (README, then the section's
name in double quotes, in parentheses) names a README heading or a bold run-in title."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
README_REFERENCE = re.compile(r'\(README, "([^"]+)"\)')
SOURCES = ("cpp", "stars_cpp", "tests", "tools", "bench", "docs")
SUFFIXES = {".py", ".cc", ".h", ".md", ".txt", ".sh", ".toml", ".pyi"}


def _sources() -> list[Path]:
    files = [ROOT / "Makefile", ROOT / "README.md", ROOT / "pyproject.toml"]
    for folder in SOURCES:
        files += sorted(p for p in (ROOT / folder).rglob("*")
                        if p.is_file() and (p.suffix in SUFFIXES or p.name == "CMakeLists.txt"))
    return files


def test_relative_links_point_to_files():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor of the same page
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken


def test_readme_references_name_its_sections():
    readme = (ROOT / "README.md").read_text()
    headings = [m.group(1) for m in re.finditer(r"^#+ (.+)$", readme, re.M)]
    titles = re.findall(r"^\*\*([^*]+?)\.\*\*", readme, re.M)
    missing = []
    for path in _sources():
        for name in README_REFERENCE.findall(path.read_text(errors="replace")):
            if not any(h.startswith(name) for h in headings) and name not in titles:
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing
    assert len(headings) > 5
