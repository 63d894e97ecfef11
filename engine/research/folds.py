"""Walk-forward folds: where each train window, purge gap and test window lies, in bars.

Test windows follow each other without overlap or gap, so the test windows of all folds make
one contiguous out-of-sample span; the first train window starts at the backtest window's
start. ``rolling``: every train window has the configured length and slides on by one test
window per fold. ``anchored``: every train window starts at the backtest window's start and
grows. Bars after the last whole test window are left out (``unused_bars``), never a short fold.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.errors import UserError

_UNIT_MS = {"h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


@dataclass(frozen=True)
class Fold:
    index: int  # 1-based, in time order
    train: tuple[int, int]  # bar range [start, stop)
    test: tuple[int, int]

    @property
    def purge(self) -> int:
        return self.test[0] - self.train[1]


@dataclass(frozen=True)
class FoldPlan:
    folds: tuple[Fold, ...]
    scheme: str
    train_bars: int
    test_bars: int
    purge_bars: int
    unused_bars: int  # bars of the window after the last test window


def length_bars(value: Any, bar_ms: int, key: str, minimum: int = 1) -> int:
    """``720`` (bars) or ``"30d"`` / ``"36h"`` / ``"2w"`` as a whole number of bars."""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int):
        bars = value
    else:
        m = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", str(value))
        if not m:
            raise UserError(f"{key} is {value!r}; expected a number of bars (720) or hours/days/weeks like '36h', '30d', '2w'")
        ms = int(m.group(1)) * _UNIT_MS[m.group(2)]
        if ms % bar_ms:
            raise UserError(f"{key} is {value!r}, not a whole number of {bar_ms // 60_000}-minute bars; "
                            f"expected a multiple of the bar length")
        bars = ms // bar_ms
    if bars < minimum:
        raise UserError(f"{key} is {value!r} ({bars} bars); expected at least {minimum} bar(s)")
    return bars


def make_folds(start: int, stop: int, train: int, test: int, purge: int, scheme: str) -> FoldPlan:
    """Folds over the bar window [start, stop) (see the module doc)."""
    if scheme not in ("rolling", "anchored"):
        raise UserError(f"walkforward.scheme is {scheme!r}; expected rolling or anchored")
    folds: list[Fold] = []
    test_start = start + train + purge
    while test_start + test <= stop:
        train_stop = test_start - purge
        train_start = start if scheme == "anchored" else train_stop - train
        folds.append(Fold(len(folds) + 1, (train_start, train_stop), (test_start, test_start + test)))
        test_start += test
    unused = stop - (folds[-1].test[1] if folds else start)
    return FoldPlan(tuple(folds), scheme, train, test, purge, unused)
