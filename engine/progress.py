"""A tiny progress reporter: bars processed, rate and ETA, drawn only on a terminal.

``Progress`` is the ``progress(k, total)`` callable the backtest loop accepts. On a TTY it
redraws one status line on stderr (at most every ``min_interval`` seconds, so it costs
nothing measurable per bar); anywhere else -- a log file, CI, a pipe, a sweep worker whose
stderr is captured -- it prints nothing, so logs stay clean.

``RULEBOOK_PROGRESS`` overrides the terminal check: ``always``, ``never`` or ``auto`` (default).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, TextIO

ENV_VAR = "RULEBOOK_PROGRESS"
_CHOICES = ("auto", "always", "never")


class ProgressSettingError(ValueError):
    """``RULEBOOK_PROGRESS`` holds something other than auto / always / never."""


def progress_enabled(stream: TextIO, env: dict | None = None) -> bool:
    """Whether to draw on ``stream``: the env override first, else ``stream.isatty()``."""
    raw = (os.environ if env is None else env).get(ENV_VAR, "auto").strip().lower() or "auto"
    if raw not in _CHOICES:
        raise ProgressSettingError(f"environment variable {ENV_VAR} is {raw!r}; expected one of {', '.join(_CHOICES)}")
    if raw != "auto":
        return raw == "always"
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or file-less streams are not terminals
        return False


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3725`` -> ``1h02m``; unknown (inf/NaN) -> ``?``."""
    if not (seconds >= 0 and seconds != float("inf")):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def status_line(label: str, done: int, total: int, elapsed: float, unit: str = "bars") -> str:
    """One status line: ``label  1,024/8,784 bars  11.7%  512 bars/s  ETA 15s``."""
    total = max(int(total), 1)
    done = min(max(int(done), 0), total)
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else float("inf")
    head = f"{label}  " if label else ""
    return (f"{head}{done:,}/{total:,} {unit}  {100.0 * done / total:5.1f}%  "
            f"{rate:,.0f} {unit}/s  ETA {format_duration(eta)}")


class Progress:
    """``progress(k, total)`` callable; ``close()`` draws the final state and ends the line."""

    def __init__(self, label: str = "", unit: str = "bars", stream: TextIO | None = None,
                 enabled: bool | None = None, min_interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = progress_enabled(self.stream) if enabled is None else enabled
        self.min_interval = min_interval
        self._clock = clock
        self._t0 = clock()
        self._last_draw = float("-inf")
        self._width = 0
        self._last: tuple[int, int] | None = None
        self.draws = 0  # how many times a line was drawn (tests and benchmarks read it)

    def __call__(self, done: int, total: int) -> None:
        self._last = (done, total)
        if not self.enabled:
            return
        now = self._clock()
        if now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self._draw(done, total, now)

    def _draw(self, done: int, total: int, now: float) -> None:
        line = status_line(self.label, done, total, now - self._t0, self.unit)
        # pad over the previous line's tail: '\r' returns the cursor but does not clear
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self.draws += 1

    def close(self, total: int | None = None) -> None:
        """Draw the last state (100% when ``total`` is given) and end the line; quiet when disabled."""
        if not self.enabled:
            return
        if total is not None:
            self._last = (total, total)
        if self._last is None:
            return
        self._draw(*self._last, self._clock())
        self.stream.write("\n")
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        # on success the run finished every bar; on error leave the line where it stopped
        self.close(self._last[1] if exc_type is None and self._last else None)
