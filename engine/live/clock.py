"""The mode's clock: wall time on a real exchange, the emulator's accelerated time offline,
or the emulator's market moved bar by bar on demand (``StepClock``: replays as fast as the
loop decides, no sleeping; the parity harness, engine/parity.py).

Cycles align to bar closes on this clock. A simulated clock either reads the in-process
emulator directly or, for an emulator in another process, extrapolates from the newest
bar it has seen at the configured speed (and corrects itself on every fetch).
"""
from __future__ import annotations

import time
from typing import Callable


class WallClock:
    speed = 1.0

    def __init__(self, settle_s: float = 2.0):
        self.settle_ms = int(settle_s * 1000)

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def sleep_until(self, target_ms: int, stop: Callable[[], bool]) -> None:
        _sleep_until(self, target_ms + self.settle_ms, stop)

    def resume_at(self, ms: int) -> None:
        """Wall time cannot be moved (and is never behind an account's stored bars)."""


class SimClock:
    """The emulator's accelerated clock, read from ``source`` (simulated epoch ms)."""

    settle_ms = 0

    def __init__(self, speed: float, source: Callable[[], int], resume: Callable[[int], None] | None = None):
        if not speed or speed <= 0:
            raise ValueError(f"a simulated clock needs a speed > 0, found {speed!r}")
        self.speed = float(speed)
        self.source = source
        self._resume = resume

    def resume_at(self, ms: int) -> None:
        """Move a simulated exchange we run ourselves forward to ``ms`` if it is behind (a restart
        of exchange=local_sim starts its market afresh); one in another process cannot be moved."""
        if self._resume is not None and self.now_ms() < ms:
            self._resume(int(ms))

    @classmethod
    def from_origin(cls, speed: float, origin_ms: int, origin_wall_s: float) -> "SimClock":
        """For an emulator in another process: its simulated time was ``origin_ms`` at wall time
        ``origin_wall_s`` and runs ``speed`` times faster than the wall clock."""
        return cls(speed, lambda: int(origin_ms + (time.time() - origin_wall_s) * 1000.0 * speed))

    def now_ms(self) -> int:
        return int(self.source())

    def sleep_until(self, target_ms: int, stop: Callable[[], bool]) -> None:
        _sleep_until(self, target_ms, stop)


class StepClock:
    """The in-process emulator's market in step mode (``exchange.emulator.speed: null``): waiting
    for a bar close moves the market to it at once. A session on this clock replays the
    emulator's bars as fast as it can decide, deterministically (no wall time reaches a decision)."""

    settle_ms = 0
    speed = float("inf")  # no wall time passes between bars

    def __init__(self, emulator):
        self.emulator = emulator

    def now_ms(self) -> int:
        return int(self.emulator.market.now_ms())

    def resume_at(self, ms: int) -> None:
        self.sleep_until(ms, lambda: False)

    def sleep_until(self, target_ms: int, stop: Callable[[], bool]) -> None:
        m = self.emulator.market
        if not stop() and self.now_ms() < target_ms:
            self.emulator.advance(-(-(target_ms - self.now_ms()) // m.step_ms))  # whole steps, rounded up


def _sleep_until(clock, target_ms: int, stop: Callable[[], bool]) -> None:
    while not stop():
        left_ms = target_ms - clock.now_ms()
        if left_ms <= 0:
            return
        # wake at least 5x a second so a stop request or kill switch is seen promptly
        time.sleep(min(left_ms / 1000.0 / clock.speed, 0.2))
