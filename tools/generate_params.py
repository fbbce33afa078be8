"""Writes the files generated from the core's settings table: stars_cpp/params.py (the typed
keywords of the public API) and docs/parameters.md. ``--check`` writes nothing and exits 1 when
one is stale (tests/test_settings.py runs it)."""

from __future__ import annotations

import sys
from pathlib import Path

from stars_cpp import settings

ROOT = Path(__file__).resolve().parent.parent
FILES = {ROOT / "stars_cpp" / "params.py": settings.params_py,
         ROOT / "docs" / "parameters.md": settings.parameters_md}


def main(argv: list[str]) -> int:
    check_only = "--check" in argv
    stale = [path for path, make in FILES.items()
             if not path.exists() or path.read_text() != make()]
    for path in stale if not check_only else ():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(FILES[path]())
    if stale:
        verb = "stale" if check_only else "wrote"
        print(f"{verb}: " + ", ".join(str(p.relative_to(ROOT)) for p in stale))
    return 1 if check_only and stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
