"""Waiting in tests: on a condition or on a line a subprocess writes, always with a bound.

A test never sleeps a fixed time hoping something happened (too short on a loaded machine,
wasted time on an idle one): it waits until the thing it needs is observably true, and a
wait that runs out raises, naming what it waited for.

    wait_until(lambda: db_has_a_cycle(path), timeout=30, what="the first recorded cycle")
    lines = LineReader(proc.stdout, "the emulator process"); info = lines.next(30, "its address line")
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable, IO, TypeVar

T = TypeVar("T")

POLL_S = 0.02  # how often a condition is re-checked: far below any step the tests wait for


class WaitTimeout(AssertionError):
    """A bounded wait ran out (an AssertionError: the test fails, naming what never happened)."""


def wait_until(predicate: Callable[[], T], timeout: float, what: str, poll_s: float = POLL_S) -> T:
    """Re-check ``predicate`` until it returns something truthy and return that; raise
    WaitTimeout after ``timeout`` seconds. ``what`` names the awaited condition for the message."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(f"waited {timeout:g}s for {what}; it did not happen")
        time.sleep(min(poll_s, left))  # the polling interval of a bounded wait, not a synchronisation


def wait_for_event(event: threading.Event, timeout: float, what: str) -> None:
    """``event.wait`` that fails the test, naming ``what``, when the event is not set in time."""
    if not event.wait(timeout):
        raise WaitTimeout(f"waited {timeout:g}s for {what}; it did not happen")


class LineReader:
    """The lines a subprocess writes to a pipe, read by a daemon thread so a test can wait for
    the next one with a timeout (a bare readline would block forever on a hung child)."""

    def __init__(self, stream: IO[str], who: str):
        self.who = who
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), name=f"lines of {who}", daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # end of stream: the process closed its output (exited)

    def next(self, timeout: float, what: str) -> str:
        """The next line; WaitTimeout if none comes within ``timeout`` s or the stream ends."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise WaitTimeout(f"waited {timeout:g}s for {what} from {self.who}; no line came") from None
        if line is None:
            raise WaitTimeout(f"{self.who} closed its output before writing {what}")
        return line
