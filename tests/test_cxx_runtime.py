"""The extension's C++ runtime is its own: a library that exports another copy cannot take it over.

llama-cpp-python built with -static-libstdc++ ships a libllama.so and libggml*.so that each
export their copy of parts of the runtime (libllama: std::current_exception and
std::rethrow_exception; libggml-base: __cxa_throw, __cxa_begin_catch, ...). ld.so bound each of
the extension's runtime references to the first copy it found, so nanobind's exception
translation could read an exception_ptr from one copy's exception globals while the catch had
been recorded in another's: a null exception_ptr, and a segfault in std::rethrow_exception
instead of a stars_cpp error in Python.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import stars_cpp

CORE = Path(stars_cpp._core.__file__)

# Runtime symbols of libstdc++/libsupc++/libgcc: the extension must import none of them.
RUNTIME_SYMBOL = re.compile(r"^(__cxa_|__gxx_personality|_Unwind_|_ZSt|_ZNSt|_ZNKSt|_ZTISt|"
                            r"_ZTVSt|_ZTVN10__cxxabiv|_ZTIN10__cxxabiv|_Znw|_Zna|_Zdl|_Zda)")


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} (binutils, g++) is needed to build stars_cpp and this test"
    return path


def test_core_links_no_shared_cxx_runtime():
    out = subprocess.run([_tool("readelf"), "-d", str(CORE)], capture_output=True, text=True,
                         check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    assert needed, out
    assert not [n for n in needed if n.startswith(("libstdc++", "libgcc_s", "libc++"))], needed


def test_core_imports_no_cxx_runtime_symbol():
    out = subprocess.run([_tool("nm"), "-D", "--undefined-only", str(CORE)], capture_output=True,
                         text=True, check=True).stdout
    # Strong references only ("U"); glibc's __cxa_atexit/__cxa_finalize are versioned @GLIBC.
    imported = [line.split()[-1] for line in out.splitlines() if line.split()[:1] == ["U"]]
    runtime = [s for s in imported if "@GLIBC" not in s and RUNTIME_SYMBOL.match(s)]
    assert not runtime, runtime[:20]


FAKE_RUNTIME = textwrap.dedent("""
    #include <exception>
    // Takes std::current_exception and std::rethrow_exception out of libstdc++.a together with
    // the exception globals they read, which stay private: what libllama.so exports when it is
    // linked with -static-libstdc++.
    extern "C" std::exception_ptr fake_runtime_current() {
      try { throw 1; } catch (...) { return std::current_exception(); }
    }
    extern "C" void fake_runtime_rethrow(std::exception_ptr p) { std::rethrow_exception(p); }
""")

RAISE_STARS_ERROR = textwrap.dedent("""
    import ctypes, sys
    ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)  # before stars_cpp binds its symbols
    import stars_cpp
    try:
        stars_cpp.Engine(sys.argv[2])
    except stars_cpp.ModelNotFoundError as error:
        print("reached Python:", error)
""")


def test_stars_error_reaches_python_past_an_exporting_runtime(tmp_path):
    source = tmp_path / "fake_runtime.cc"
    source.write_text(FAKE_RUNTIME)
    exports = tmp_path / "exports.map"
    exports.write_text(
        "{ global: _ZSt17current_exception*; _ZSt17rethrow_exception*; local: *; };\n")
    library = tmp_path / "libfake_runtime.so"
    build = subprocess.run(
        [_tool("g++"), "-shared", "-fPIC", "-O1", "-static-libstdc++", "-static-libgcc",
         f"-Wl,--version-script={exports}", "-o", str(library), str(source)],
        capture_output=True, text=True)
    assert build.returncode == 0, f"cannot link with -static-libstdc++: {build.stderr[-500:]}"

    missing = tmp_path / "missing.gguf"
    run = subprocess.run([sys.executable, "-c", RAISE_STARS_ERROR, str(library), str(missing)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert "reached Python: model file not found" in run.stdout, run.stdout
