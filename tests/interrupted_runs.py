"""Runs killed with -9 mid-way, as a crash or an OOM kill would end them."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path


def kill_9_after(command: list[str], env: dict, cwd: Path, out: Path, lines: int,
                 timeout: float = 300) -> int:
    """Starts `command`, kills it with SIGKILL once `out` holds `lines` lines, and returns how
    many it holds then."""
    proc = subprocess.Popen(command, env=env, cwd=cwd)
    deadline = time.monotonic() + timeout
    while not out.exists() or out.read_text().count("\n") < lines:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return out.read_text().count("\n")
