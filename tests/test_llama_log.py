"""llama.cpp's log goes through Python's logging (logger stars_cpp.llama), quiet by default."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import llama_cpp
import pytest

import stars_cpp
from stars_cpp import llama_log

# Lines llama.cpp logs at INFO on every model load and context creation.
LOAD_LINES = ("llama_model_loader", "llama_context", "load_tensors")


def _run(code: str, *args: str, tmp_path) -> subprocess.CompletedProcess:
    # Outside the source tree, so that the installed package is imported.
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)


GENERATE = """
import sys, stars_cpp
verbose = sys.argv[2] == "1"
engine = stars_cpp.Engine(sys.argv[1], n_ctx=256, verbose=verbose)
print(engine.generate("hello", mode="plain", max_tokens=3, seed=1).text)
"""


def test_quiet_by_default(tiny_llama, tmp_path):
    # Before: llama.cpp's INFO lines (model loader, context) reached stderr on every load.
    done = _run(GENERATE, str(tiny_llama), "0", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith(LOAD_LINES)], \
        done.stderr


def test_verbose_engine_shows_the_log(tiny_llama, tmp_path):
    done = _run(GENERATE, str(tiny_llama), "1", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("llama_context")], \
        done.stderr


@pytest.mark.frontends
def test_cli_verbose_twice_shows_the_log(tiny_llama, tmp_path):
    cli = [sys.executable, "-m", "stars_cpp", "generate", "hi", "--model", str(tiny_llama),
           "--mode", "plain", "--max-tokens", "2", "--n-ctx", "256"]
    once = subprocess.run(cli + ["--verbose"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    twice = subprocess.run(cli + ["-vv"], capture_output=True, text=True, cwd=tmp_path,
                           timeout=120)
    assert once.returncode == twice.returncode == 0, (once.stderr, twice.stderr)
    assert "stats:" in once.stderr and "stats:" in twice.stderr  # the trace, both times
    assert "llama_context" not in once.stderr
    assert "llama_context" in twice.stderr


def _records(caplog, since: int) -> list[logging.LogRecord]:
    llama_log.flush()
    return [r for r in caplog.records[since:] if r.name == "stars_cpp.llama"]


def test_both_libraries_log_through_the_logger_and_stay_usable(caplog, tiny_llama):
    with caplog.at_level(logging.DEBUG, logger="stars_cpp.llama"):
        llama_log.set_verbose()  # the threshold follows the logger at once
        start = len(caplog.records)
        engine = stars_cpp.Engine(str(tiny_llama), n_ctx=256)
        assert len(engine.generate("hello", mode="plain", max_tokens=3, seed=1).tokens) == 3
        ours = _records(caplog, start)
        assert any(r.getMessage().startswith("llama_context") for r in ours)
        assert {r.levelno for r in ours} <= {logging.DEBUG, logging.INFO, logging.WARNING}
        # llama-cpp-python keeps working; its llama.cpp lines come through the same logger.
        start = len(caplog.records)
        llm = llama_cpp.Llama(str(tiny_llama), n_ctx=256, verbose=False)
        out = llm("hello", max_tokens=3, temperature=0.0)
        assert out["choices"][0]["text"] is not None
        assert any(r.getMessage().startswith("llama_model_loader")
                   for r in _records(caplog, start))
        llm.close()
    logging.getLogger("stars_cpp.llama").setLevel(logging.NOTSET)


def test_threshold_follows_the_logger_level(caplog, tiny_llama):
    # Below the threshold nothing is queued; the reader thread reads the level again each poll.
    logger = logging.getLogger("stars_cpp.llama")
    logger.setLevel(logging.ERROR)
    time.sleep(2 * llama_log._POLL_S)
    llama_log.flush()
    start = len(caplog.records)
    stars_cpp.Engine(str(tiny_llama), n_ctx=256).generate("hi", mode="plain", max_tokens=1)
    assert not _records(caplog, start)
    logger.setLevel(logging.NOTSET)


def test_llama_cpp_python_load_log_is_quiet_too(tiny_llama, tmp_path):
    # Before: after `import stars_cpp`, a llama_cpp.Llama (verbose by default) still printed
    # llama.cpp's whole load log, about 290 lines for the tiny model, through its own callback.
    code = ("import sys, stars_cpp, llama_cpp\n"
            "llm = llama_cpp.Llama(sys.argv[1], n_ctx=256)\n"
            "print(llm('hi', max_tokens=2)['choices'][0]['text'] is not None)\n")
    done = _run(code, str(tiny_llama), tmp_path=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
    assert "llama_model_loader" not in done.stderr, done.stderr[:2000]
