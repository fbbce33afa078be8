"""One submitted request's callbacks (Engine.submit), waited on from the test thread."""

from __future__ import annotations

import threading


class Outcome:
    def __init__(self) -> None:
        self.segments: list = []
        self.result = None
        self.error: BaseException | None = None
        self.started = threading.Event()  # the first segment arrived
        self.done = threading.Event()

    def on_segment(self, segment) -> None:
        self.segments.append(segment)
        self.started.set()

    def on_result(self, result) -> None:
        self.result = result
        self.done.set()

    def on_error(self, error: BaseException) -> None:
        self.error = error
        self.done.set()

    def wait(self) -> Outcome:
        assert self.done.wait(120), "request did not finish"
        return self
