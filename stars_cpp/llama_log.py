"""llama.cpp's log through Python's ``logging``, under the logger ``stars_cpp.llama``.

At import, stars_cpp takes llama.cpp's log callback over, once per process, from the one
llama-cpp-python installed (which prints to stderr and takes the GIL on whatever thread logs).
The new callback, in C++, never takes the GIL: it queues each line at or above the logger's
level, and a daemon thread hands the queue to ``logging``. So llama.cpp lines from both libraries,
``llama_cpp.Llama`` included, reach ``stars_cpp.llama``; by default only warnings and errors
show. ``Engine(..., verbose=True)`` or ``stars-cpp ... --verbose --verbose`` show the rest, and
so does ``logging.getLogger("stars_cpp.llama").setLevel(logging.DEBUG)`` (within a second).
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading

from stars_cpp import _core

LOGGER = logging.getLogger("stars_cpp.llama")
# How long the reader waits for lines before it reads the logger's level again.
_POLL_S = 0.5

_lock = threading.Lock()
_thread: threading.Thread | None = None
_stopping = threading.Event()


def _emit(lines: list[tuple[int, str]], dropped: int) -> None:
    for level, text in lines:
        LOGGER.log(level, "%s", text)
    if dropped:
        LOGGER.warning("%d llama.cpp log lines were dropped (the log queue was full)", dropped)


def _read_until_exit() -> None:
    while not _stopping.is_set():
        _core.set_log_threshold(LOGGER.getEffectiveLevel())
        _emit(*_core.take_log_lines(_POLL_S))


def _stop() -> None:
    # A daemon thread still inside the extension when the interpreter finalizes is killed by
    # an unwind through C++ frames, which can abort the process: stop it before that.
    _stopping.set()
    _core.wake_log_readers()
    if _thread is not None:
        _thread.join(timeout=2 * _POLL_S)
    # Lines queued since the reader's last pass (a loaded machine can starve it for longer
    # than a short run lasts) still reach logging, which shuts down after this handler.
    flush()


def install() -> None:
    """Take llama.cpp's log over and start the reader, once per process."""
    global _thread
    with _lock:
        if _thread is not None:
            return
        _core.install_log(LOGGER.getEffectiveLevel())
        _thread = threading.Thread(target=_read_until_exit, name="stars_cpp.llama log",
                                   daemon=True)
        _thread.start()
        atexit.register(_stop)


def flush() -> None:
    """Hand every line queued so far to ``logging`` now, on the calling thread."""
    _emit(*_core.take_log_lines(0.0))


def set_verbose() -> None:
    """Show llama.cpp's whole log (DEBUG and up), on stderr unless logging is configured."""
    if LOGGER.getEffectiveLevel() > logging.DEBUG:
        LOGGER.setLevel(logging.DEBUG)
    _core.set_log_threshold(LOGGER.getEffectiveLevel())
    if not LOGGER.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOGGER.addHandler(handler)
