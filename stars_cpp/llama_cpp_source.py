"""Find llama.cpp's own Python converter (``convert_hf_to_gguf.py``) for the llama.cpp that the
installed llama-cpp-python was built from.

The converter is not in llama-cpp-python's wheel, only in its sdist (``vendor/llama.cpp``). In
order, :func:`converter_dir` uses:

1. ``STARS_CPP_LLAMA_CPP_DIR``, a llama.cpp source tree;
2. a checkout's ``third_party/llama.cpp`` (written by ``third_party/fetch_llama_cpp.sh``) when
   its recorded version is the installed llama-cpp-python's;
3. ``~/.cache/stars_cpp/llama.cpp-converter-<version>`` (``$XDG_CACHE_HOME`` respected), filled
   on first use from the sdist: ``LLAMA_CPP_PYTHON_SDIST`` if set, else
   ``pip download --no-deps --no-binary :all: llama-cpp-python==<version>``. Only the
   converter's files are extracted (about 3 MB).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from stars_cpp.errors import ConversionError, SourceNotFoundError
from stars_cpp.models import default_cache_dir

__all__ = ["CONVERTER", "converter_dir", "extract_converter", "llama_cpp_python_version"]

CONVERTER = "convert_hf_to_gguf.py"
ENV_DIR = "STARS_CPP_LLAMA_CPP_DIR"
ENV_SDIST = "LLAMA_CPP_PYTHON_SDIST"
# What convert_hf_to_gguf.py needs from the llama.cpp tree: itself, the per-architecture
# `conversion` package, the matching `gguf-py` (it puts that first on sys.path) and the chat
# templates some architectures read from models/templates. Plus the license.
_CONVERTER_FILES = (CONVERTER, "LICENSE")
_CONVERTER_DIRS = ("conversion/", "gguf-py/", "models/templates/")
_STAMP = ".stars_cpp_version"
_COMPLETE = ".stars_cpp_complete"


def llama_cpp_python_version() -> str:
    """The installed llama-cpp-python's version (read without loading libllama)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:  # pragma: no cover - stars_cpp depends on it
        import llama_cpp

        return llama_cpp.__version__


def _is_source_tree(path: Path) -> bool:
    return (path / CONVERTER).is_file() and (path / "gguf-py" / "gguf").is_dir()


def _checkout_dir(version: str) -> Path | None:
    """third_party/llama.cpp of the checkout this module runs from (an editable install or the
    source tree), when fetch_llama_cpp.sh recorded the same llama-cpp-python version."""
    candidate = Path(__file__).resolve().parents[1] / "third_party" / "llama.cpp"
    stamp = candidate / _STAMP
    if not _is_source_tree(candidate) or not stamp.is_file():
        return None
    lines = stamp.read_text(encoding="utf-8").splitlines()
    return candidate if lines and lines[0].strip() == f"llama-cpp-python=={version}" else None


def converter_dir(llama_cpp_dir: str | os.PathLike[str] | None = None, *,
                  cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The llama.cpp directory holding ``convert_hf_to_gguf.py`` (see the module docstring).

    ``llama_cpp_dir`` overrides the search. ``cache_dir`` replaces ``default_cache_dir()``.

    Raises:
        SourceNotFoundError: a given directory has no converter (also a ``FileNotFoundError``).
        ConversionError: the sdist could not be downloaded or holds no converter (also a
            ``RuntimeError``).
    """
    explicit = llama_cpp_dir if llama_cpp_dir is not None else os.environ.get(ENV_DIR)
    if explicit:
        path = Path(explicit).expanduser()
        if not _is_source_tree(path):
            source = "llama_cpp_dir" if llama_cpp_dir is not None else ENV_DIR
            raise SourceNotFoundError(f"{source}={str(path)!r} is not a llama.cpp source tree "
                                    f"(no {CONVERTER} and gguf-py/ in it)")
        return path
    version = llama_cpp_python_version()
    checkout = _checkout_dir(version)
    if checkout is not None:
        return checkout
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = base / f"llama.cpp-converter-{version}"
    if (target / _COMPLETE).is_file() and _is_source_tree(target):
        return target
    sdist = os.environ.get(ENV_SDIST)
    if sdist:
        return extract_converter(sdist, target)
    with tempfile.TemporaryDirectory(prefix="stars_cpp_sdist_") as tmp:
        return extract_converter(_download_sdist(version, Path(tmp)), target)


def _download_sdist(version: str, directory: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--dest", str(directory), f"llama-cpp-python=={version}"]
    print(f"stars_cpp: downloading the llama-cpp-python {version} sdist for llama.cpp's "
          f"converter (once; cached afterwards)", file=sys.stderr)
    done = subprocess.run(command, capture_output=True, text=True)
    found = sorted(directory.glob("llama_cpp_python-*.tar.gz"))
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no sdist written"]
        raise ConversionError(f"could not download the llama-cpp-python=={version} sdist for "
                           f"llama.cpp's converter ({tail[0]}); set {ENV_DIR} to a llama.cpp "
                           f"source tree or {ENV_SDIST} to the sdist file")
    return found[0]


def extract_converter(sdist: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Extract llama.cpp's converter files from a llama-cpp-python sdist into ``target``.

    Only ``vendor/llama.cpp/`` members the converter needs are read; links and anything
    outside that tree are skipped. The tree is written beside ``target`` and renamed into
    place, so a concurrent or interrupted run never leaves a half-written converter behind.
    """
    sdist, target = Path(sdist), Path(target)
    if not sdist.is_file():
        raise SourceNotFoundError(f"llama-cpp-python sdist {str(sdist)!r} not found")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with tarfile.open(sdist, "r:*") as archive:
            for member in archive:
                relative = _converter_member(member.name)
                if relative is None or not member.isfile():
                    continue
                out = staging / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                if source is None:
                    continue
                with source, open(out, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        if not _is_source_tree(staging):
            raise ConversionError(f"{sdist.name} holds no vendor/llama.cpp/{CONVERTER} with "
                               f"gguf-py/: not a llama-cpp-python sdist?")
        (staging / _STAMP).write_text(f"{sdist.name}\n", encoding="utf-8")
        (staging / _COMPLETE).write_text("", encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp made it private
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished first; its tree is as good as ours.
            if not _is_source_tree(target):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _converter_member(name: str) -> Path | None:
    """The path inside llama.cpp of a converter file in the sdist, or None."""
    parts = Path(name).parts
    # <sdist root>/vendor/llama.cpp/<relative path>
    if len(parts) < 4 or parts[1:3] != ("vendor", "llama.cpp") or ".." in parts:
        return None
    relative = "/".join(parts[3:])
    if relative in _CONVERTER_FILES or relative.startswith(_CONVERTER_DIRS):
        if "__pycache__" in parts:
            return None
        return Path(*parts[3:])
    return None
