"""The emulator's own count of each rate pool, as the exchange keeps it (independent of the
client's RateBudget, so a test catches a client that under-counts).

``window``: cost in the last ``window_s`` seconds may not exceed ``limit``;
``decay``: a counter raised by each request and drained at ``decay_per_s``, refused above ``limit``.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerPool:
    kind: str  # window | decay
    limit: float  # window: cost per window; decay: the counter's ceiling
    window_s: float = 1.0  # window only
    decay_per_s: float = 0.0  # decay only

    @classmethod
    def from_spec(cls, spec) -> "ServerPool":
        """From a profile's PoolConfig (or a bare number: that many requests per second)."""
        if isinstance(spec, (int, float)):
            return cls("window", float(spec), 1.0)
        if spec.kind == "decay":
            return cls("decay", float(spec.max_count), decay_per_s=float(spec.limit_per_s))
        return cls("window", spec.limit_per_s * spec.burst_s, spec.burst_s)


class ServerLimits:
    def __init__(self, pools: dict[str, ServerPool], clock=time.monotonic):
        self.pools = dict(pools)
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple, deque] = {}
        self._counters: dict[tuple, list[float]] = {}  # key -> [value, updated]
        self.arrivals: dict[str, list[tuple[float, float]]] = {p: [] for p in pools}  # (time, cost)
        self.refused: dict[str, int] = {p: 0 for p in pools}

    @classmethod
    def from_profile(cls, defaults: dict[str, ServerPool], specs, clock=time.monotonic) -> "ServerLimits":
        """An exchange's own pools, each replaced by the profile's spec where the profile gives one
        (a spec naming a pool this exchange does not count is ignored)."""
        return cls({name: ServerPool.from_spec(specs[name]) if name in specs else pool
                    for name, pool in defaults.items()}, clock)

    def used(self, pool: str, who: str = "") -> float:
        with self._lock:
            return self._used(pool, who, self.clock())

    def _used(self, pool: str, who: str, now: float) -> float:
        p = self.pools[pool]
        if p.kind == "decay":
            c = self._counters.setdefault((pool, who), [0.0, now])
            c[0] = max(0.0, c[0] - (now - c[1]) * p.decay_per_s)
            c[1] = now
            return c[0]
        win = self._windows.setdefault((pool, who), deque())
        while win and now - win[0][0] >= p.window_s:
            win.popleft()
        return sum(c for _, c in win)

    def admit(self, charges: list[tuple[str, str, float]], enforce: bool = True) -> str | None:
        """Record the charges (pool, who, cost); return the first pool that is full (nothing recorded)."""
        now = self.clock()
        with self._lock:
            for pool, who, cost in charges:
                self.arrivals[pool].append((now, cost))
            for pool, who, cost in charges:
                # _used also creates and drains the counter: needed even when nothing is enforced
                if self._used(pool, who, now) + cost > self.pools[pool].limit + 1e-9 and enforce:
                    self.refused[pool] += 1
                    return pool
            for pool, who, cost in charges:
                p = self.pools[pool]
                if p.kind == "decay":
                    self._counters[(pool, who)][0] += cost
                else:
                    self._windows[(pool, who)].append((now, cost))
            return None

    def peak(self, pool: str) -> float:
        """Window pools: the most cost that arrived in any window; decay pools: the counter's peak
        had every arrival been admitted."""
        p = self.pools[pool]
        with self._lock:
            ts = list(self.arrivals[pool])
        if p.kind == "decay":
            best, level, last = 0.0, 0.0, None
            for t, c in ts:
                level = max(0.0, level - ((t - last) if last is not None else 0.0) * p.decay_per_s) + c
                last = t
                best = max(best, level)
            return best
        best, lo, acc = 0.0, 0, 0.0
        for hi, (t, c) in enumerate(ts):
            acc += c
            while t - ts[lo][0] >= p.window_s:
                acc -= ts[lo][1]
                lo += 1
            best = max(best, acc)
        return best
