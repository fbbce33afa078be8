"""Writes the files generated from the core's tables: stars_cpp/params.py (the typed keywords
of the public API), docs/parameters.md (every setting) and docs/errors.md (every error class,
its exit status and HTTP status). ``--check`` writes nothing and exits 1 when one is stale
(tests/test_settings.py runs it). ``make generated`` runs it."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from stars_cpp import _core, errors, settings

ROOT = Path(__file__).resolve().parent.parent


def errors_md() -> str:
    """docs/errors.md: the core's error table (stars/errors.h) with each class's Python bases."""
    out = ["# Errors", "",
           "Generated from the core's error table (`cpp/src/errors.cc`) by `make generated`. "
           "Every error stars_cpp raises is defined once, in `stars_cpp/errors.py` (the C++ core "
           "raises the same classes), derives from `StarsError`, names the file, parameter or "
           "value, and keeps the builtin base you would catch. A `ParameterError` names the "
           "setting at fault in `.param` too. Both command lines exit with the status below "
           "and print one line; the server answers with the HTTP status and OpenAI error type "
           "below, `error.param` set from `.param`.", "",
           "| error | also a | exit status | HTTP | when |", "|---|---|---|---|---|"]
    for entry in _core.ERROR_CLASSES:
        if not entry["name"]:
            continue
        cls = getattr(errors, entry["name"])
        bases = [b.__name__ for b in cls.__mro__[1:]
                 if b not in (Exception, BaseException, object, errors.StarsError)]
        doc = inspect.getdoc(cls).split("\n\n")[0].replace("\n", " ")
        out.append(f"| `{entry['name']}` | {', '.join(f'`{b}`' for b in bases)} | "
                   f"{entry['exit_code']} | {entry['http_status']} `{entry['http_type']}` | "
                   f"{doc} |")
    other = next(e for e in _core.ERROR_CLASSES if not e["name"])
    out += ["", f"Any other exception exits with status {other['exit_code']} and answers "
            f"{other['http_status']} `{other['http_type']}`.", ""]
    return "\n".join(out)


FILES = {ROOT / "stars_cpp" / "params.py": settings.params_py,
         ROOT / "docs" / "parameters.md": settings.parameters_md,
         ROOT / "docs" / "errors.md": errors_md}


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
