"""The backtest's progress line, drawn by tqdm, only on a terminal.

``Progress`` is the ``progress(k, total)`` callable the backtest loop accepts. On a TTY it shows
tqdm's bar on stderr (bars processed, rate, ETA; redrawn at most every ``min_interval`` seconds,
so it costs nothing measurable per bar); anywhere else -- a log file, CI, a pipe, a sweep worker
whose stderr is captured -- it is disabled and prints nothing, so logs stay clean.

``RULEBOOK_PROGRESS`` overrides the terminal check: ``always``, ``never`` or ``auto`` (default).
"""
from __future__ import annotations

import os
import sys
from typing import TextIO

from tqdm import tqdm

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
    """``75`` -> ``1m15s``; ``3725`` -> ``1h02m``; unknown (inf/NaN) -> ``?`` (the sweep's log lines)."""
    if not (seconds >= 0 and seconds != float("inf")):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class _Bar(tqdm):
    """tqdm without its monitor thread (one short-lived bar per run needs none), counting draws."""
    monitor_interval = 0

    def __init__(self, *args, **kwargs) -> None:
        self.draws = 0
        super().__init__(*args, **kwargs)

    def display(self, *args, **kwargs):
        self.draws += 1
        return super().display(*args, **kwargs)


class Progress:
    """``progress(k, total)`` callable; ``close()`` draws the final state and ends the line."""

    def __init__(self, label: str = "", unit: str = "bars", stream: TextIO | None = None,
                 enabled: bool | None = None, min_interval: float = 0.25) -> None:
        self.label = label
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = progress_enabled(self.stream) if enabled is None else enabled
        self.min_interval = min_interval
        self._bar: _Bar | None = None
        self._last: tuple[int, int] | None = None

    @property
    def draws(self) -> int:
        """How many times a line was drawn (tests and benchmarks read it)."""
        return self._bar.draws if self._bar is not None else 0

    def __call__(self, done: int, total: int) -> None:
        self._last = (done, total)
        if not self.enabled:
            return
        if self._bar is None:
            # created at the first report, when the total is known; tqdm throttles the redraws
            self._bar = _Bar(total=max(int(total), 1), desc=self.label or None, unit=self.unit, file=self.stream,
                             mininterval=self.min_interval, miniters=1, leave=True, dynamic_ncols=True)
        self._bar.update(min(max(int(done), 0), self._bar.total) - self._bar.n)

    def close(self, total: int | None = None) -> None:
        """Draw the last state (100% when ``total`` is given) and end the line; quiet when disabled."""
        if not self.enabled or self._bar is None:
            return
        if total is not None:
            self._bar.n = self._bar.total = max(int(total), 1)
        self._bar.close()  # tqdm draws the final state once more and ends the line (leave=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        # on success the run finished every bar; on error leave the line where it stopped
        self.close(self._last[1] if exc_type is None and self._last else None)
