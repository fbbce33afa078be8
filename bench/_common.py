"""What every bench records: the machine, the versions, where results go."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import shutil
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def backend() -> str:
    """The llama.cpp backend that llama-cpp-python was built with."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    # Vulkan's backend does not list itself there; its library in the wheel does.
    libs = " ".join(p.name for p in (Path(llama_cpp.__file__).parent / "lib").glob("libggml-*"))
    for name in ("CUDA", "METAL", "VULKAN", "SYCL", "HIP"):
        if f"{name} :" in info or f"{name}:" in info or f"libggml-{name.lower()}." in libs:
            return name.lower()
    return "cpu"


def gpu_name() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else None


def machine() -> dict[str, Any]:
    import llama_cpp

    import stars_cpp

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "backend": backend(),
        "gpu": gpu_name(),
        "llama_cpp_python": llama_cpp.__version__,
        "stars_cpp": stars_cpp.__version__,
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_json(name: str, payload: dict[str, Any], out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def fill_batch(batch, rows) -> None:
    """Writes (token, position, sequence, wants logits) rows into a llama_batch."""
    batch.n_tokens = len(rows)
    for i, (token, pos, seq, logits) in enumerate(rows):
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits


def pyplot():
    """matplotlib's pyplot on a file-only backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def log_softmax_rows(llm: Any, tokens: list[int], start: int):
    """Each of tokens[start:]'s next-token distribution under llama-cpp-python's `llm` (built
    with logits_all), as float64 log-probabilities: one row per token."""
    import numpy as np

    llm.reset()
    llm.eval(tokens)
    logits = np.asarray(llm.scores[start - 1:len(tokens) - 1], dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
