"""CPU seconds by kind of kernel, from Linux perf's sampled profile of a command.

The benches use it to say where a workload's time goes on the CPU backend: the products with
the model's weights, attention over the KV cache, threads waiting on each other, the rest.
The wheel's CPU library is stripped, and most kernels (llamafile's f16 matrix products, the
per-chunk loops) are static functions that perf cannot name there. So the command runs with
the same library built with its symbols (`make profile-lib`) loaded in its place; samples in
functions still unnamed are counted apart ("ggml_unnamed") rather than guessed.

    python bench/kernel_profile.py [--symbols] -- python my_script.py
    # CPU seconds per class as JSON; --symbols also lists the 30 costliest symbols
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SYMBOLS_LIB = Path(__file__).resolve().parent.parent / "build" / "profile-lib" / "libggml-cpu.so.0"
HZ = 499  # samples per second of each thread's CPU time (cpu-clock works in VMs without a PMU)

# First match wins. Attention on the CPU without flash attention is two matrix products whose
# first operand is the f16 KV cache (K·Q, then V·softmax): the only f16 products in quantized
# models, so the f16 kernels (ggml's dot, llamafile's tinyBLAS on f16, "unsigned short" once
# demangled) and the f32->f16 conversion of their other operand (and of the rows written into
# the cache) are attention's. The weights' products are the quantized kernels and the
# quantization of the activations that feed them.
# Copies: every memcpy, so the isolated layout's stream copies (applied inside llama_decode at
# a fork or an adoption) and ggml's copies of operands in matrix products: an upper bound on
# the stream copies' time.
CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("copies", re.compile(r"memmove|memcpy")),
    ("attention", re.compile(r"vec_dot_f16|fp32_to_fp16|soft_max|flash_attn|set_rows|"
                             r"tinyBLAS<[^>]*unsigned short")),
    ("weights", re.compile(r"vec_dot_(iq|q)\d|quantize_row_q|ggml_gemv_|ggml_gemm_|"
                           r"repack|tinyBLAS|llamafile_sgemm")),
    ("matmul_loop", re.compile(r"ggml_compute_forward_mul_mat")),
    ("threads", re.compile(r"barrier|threadpool|libgomp|sched_yield")),
    ("ggml_other", re.compile(r"^ggml_|^libggml")),
)

CONTROL_ENV = "STARS_BENCH_PERF_CONTROL"
_LINE = re.compile(r"^\s*([\d.]+)%\s+(\d+)\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$")


def available() -> bool:
    return shutil.which("perf") is not None


def classify(dso: str, symbol: str) -> str:
    if symbol.startswith("0x") and dso.startswith("libggml"):
        return "ggml_unnamed"
    name = f"{symbol} {dso}" if dso.startswith("libgomp") else symbol
    for label, pattern in CLASSES:
        if pattern.search(name):
            return label
    return "other"


def symbol_seconds(report: str) -> list[tuple[str, str, float]]:
    """(class, symbol, CPU seconds) for each line of ``perf report -n --sort dso,sym``."""
    rows = []
    for line in report.splitlines():
        m = _LINE.match(line)
        if m:
            rows.append((classify(m.group(3), m.group(5)), m.group(5), int(m.group(2)) / HZ))
    return rows


def cpu_seconds(report: str) -> dict[str, float]:
    """CPU seconds per class."""
    totals: dict[str, float] = {}
    for label, _symbol, seconds in symbol_seconds(report):
        totals[label] = totals.get(label, 0.0) + seconds
    return totals


def ggml_seconds(seconds: dict[str, float]) -> float:
    """The CPU seconds inside llama.cpp's graph compute (every class but copies and other)."""
    return sum(v for k, v in seconds.items() if k not in ("copies", "other"))


class Window:
    """In a command run with ``run(..., windowed=True)``, turns sampling on and off.

    Outside such a run (no control fifo in the environment) it does nothing.
    """

    def __init__(self) -> None:
        path = os.environ.get(CONTROL_ENV)
        self._control = open(path, "w") if path else None  # noqa: SIM115 (held open)

    def _send(self, command: str) -> None:
        if self._control is not None:
            self._control.write(command + "\n")
            self._control.flush()

    def start(self) -> None:
        self._send("enable")

    def stop(self) -> None:
        self._send("disable")

    def close(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None


@contextlib.contextmanager
def window():
    """Samples only inside this block (see ``Window``)."""
    w = Window()
    w.start()
    try:
        yield
    finally:
        w.stop()
        w.close()


def _preload() -> list[str]:
    """The command's environment for SYMBOLS_LIB: preloaded, and beside it the wheel's other
    ggml libraries it needs at load time (not perf's environment: perf would fail to start)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        raise RuntimeError("the kernel profile needs llama-cpp-python installed")
    lib = Path(spec.origin).parent / "lib"
    path = os.pathsep.join(filter(None, [str(lib), os.environ.get("LD_LIBRARY_PATH")]))
    return [f"LD_PRELOAD={SYMBOLS_LIB}", f"LD_LIBRARY_PATH={path}"]


def run(cmd: list[str], windowed: bool = False, **kwargs
        ) -> tuple[subprocess.CompletedProcess, str]:
    """Runs ``cmd`` under ``perf record``; returns its result and perf's report (for
    ``cpu_seconds`` or ``symbol_seconds``; empty if the command failed).

    ``windowed``: sampling starts off, and the command turns it on inside ``window()``.
    """
    if not available():
        raise RuntimeError("the kernel profile needs Linux perf (`apt install linux-perf`)")
    if not SYMBOLS_LIB.exists():
        raise RuntimeError(f"the kernel profile needs {SYMBOLS_LIB}: `make profile-lib` builds "
                           "llama.cpp's CPU library with its symbols")
    kwargs["env"] = dict(kwargs.get("env", os.environ))
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "perf.data")
        control = []
        if windowed:
            fifo = Path(tmp) / "control"
            os.mkfifo(fifo)
            control = ["-D", "-1", "--control", f"fifo:{fifo}"]
            kwargs["env"][CONTROL_ENV] = str(fifo)
        done = subprocess.run(["perf", "record", "-q", "-F", str(HZ), "-e", "cpu-clock",
                               *control, "-o", data, "--", "env", *_preload(), *cmd],
                              **kwargs)
        if done.returncode != 0:
            return done, ""
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "-q", "-n",
                                 "--sort", "dso,sym", "--percent-limit", "0"],
                                capture_output=True, text=True, check=True).stdout
    return done, report


def main() -> None:
    cmd = sys.argv[1:]
    top = 0
    if cmd[:1] == ["--symbols"]:  # also the 30 costliest symbols with their classes
        top, cmd = 30, cmd[1:]
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    if not cmd:
        sys.exit("usage: python bench/kernel_profile.py [--symbols] -- COMMAND [ARGS...]")
    done, report = run(cmd)
    for label, symbol, seconds in sorted(symbol_seconds(report), key=lambda r: -r[2])[:top]:
        print(f"{seconds:8.2f} s  {label:12s} {symbol[:110]}")
    seconds = cpu_seconds(report)
    print(json.dumps({k: round(v, 2) for k, v in sorted(seconds.items())}, indent=2))
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
