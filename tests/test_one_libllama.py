"""One libllama per process: stars_cpp uses the library llama_cpp loaded first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import llama_cpp

import stars_cpp


def mapped_libllama() -> set[str]:
    with open("/proc/self/maps") as maps:
        return {line.split()[-1] for line in maps if "libllama" in line.split()[-1]}


def test_one_libllama_mapped(tiny_llama):
    llm = llama_cpp.Llama(model_path=str(tiny_llama), n_ctx=128, verbose=False)
    llm.create_completion("hello", max_tokens=2)
    stars_cpp.Engine(str(tiny_llama), n_ctx=128).generate("hi", mode="plain", max_tokens=2)
    stars_cpp.Engine(llm, n_ctx=128).generate("hi", mode="plain", max_tokens=2)
    files = mapped_libllama()
    assert len(files) == 1, files
    (path,) = files
    assert Path(path).parent == Path(llama_cpp.__file__).parent / "lib"


def test_one_libllama_when_stars_cpp_is_imported_alone(tiny_llama, tmp_path):
    # A fresh interpreter that imports only stars_cpp still maps llama_cpp's library once.
    code = (
        "import stars_cpp\n"
        f"stars_cpp.Engine({str(tiny_llama)!r}, n_ctx=128).generate('hi', mode='plain', "
        "max_tokens=2)\n"
        "print(sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libllama' in l}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    files = eval(out.stdout.strip().splitlines()[-1])
    assert len(files) == 1 and files[0].endswith("llama_cpp/lib/libllama.so"), files
