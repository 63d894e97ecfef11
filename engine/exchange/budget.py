"""Per-pool request budgets that pause a caller *before* the exchange would say 429.

Each pool (Coinbase: ``public`` ~10 req/s per IP, ``private`` ~30 req/s per key) keeps a
sliding window of what it spent. ``acquire`` admits a request only while the window's
spend plus its cost stays within ``limit * window * (1 - safety_margin)``; otherwise it
sleeps until enough old spend ages out. A sliding window (rather than a refilling token
bucket) is used because a bucket of capacity C refilled at rate R admits C + R requests
in one second, which overshoots the limit in exactly the bursts we care about; the
window bounds every 1-second interval, which is how the exchange counts.

Spend above ``alert_threshold`` of the real limit logs one WARNING per crossing and
counts it. Server hints are learnt: ``Retry-After`` pauses the whole pool; a
``x-ratelimit-remaining`` of 0 pauses it until ``x-ratelimit-reset``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable, Mapping

from .config import RateLimitConfig
from .errors import ExchangeConfigError
from .types import PoolMetrics

log = logging.getLogger("rulebook.exchange.budget")


def pool_of(api: object) -> str:
    """ccxt's api tag (e.g. ``['v3', 'private']``) -> our pool name."""
    if isinstance(api, (list, tuple)):
        return "private" if "private" in api else "public"
    return "private" if api == "private" else "public"


class _Pool:
    def __init__(self, name: str, limit_per_s: float, window_s: float, margin: float):
        self.name = name
        self.limit_per_s = limit_per_s
        self.window_s = window_s
        self.capacity = limit_per_s * window_s * (1.0 - margin)
        self.events: deque[tuple[float, float]] = deque()  # (time, cost)
        self.spent = 0.0
        self.paused_until = 0.0
        self.alerting = False
        self.metrics = PoolMetrics()

    def expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self.events and self.events[0][0] <= horizon:
            self.spent -= self.events.popleft()[1]
        if not self.events:
            self.spent = 0.0  # drop float drift

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` fits in the window (0 if it fits now)."""
        if now < self.paused_until:
            return self.paused_until - now
        excess = self.spent + cost - self.capacity
        if excess <= 1e-12 or not self.events:
            return 0.0
        freed = 0.0
        for t, c in self.events:
            freed += c
            if freed >= excess - 1e-12:
                return max(t + self.window_s - now, 1e-6)
        return max(self.events[-1][0] + self.window_s - now, 1e-6)


class RateBudget:
    """Thread-safe; share one instance between every client that uses the same key and IP."""

    def __init__(self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._pools = {name: _Pool(name, p.limit_per_s, p.burst_s, config.safety_margin)
                       for name, p in config.pools.items()}

    # -- costs ------------------------------------------------------------------------
    def cost_of(self, method: str, path: str) -> float:
        return float(self.config.endpoint_costs.get(f"{method.upper()} {path}", 1.0))

    # -- admission --------------------------------------------------------------------
    def acquire(self, pool: str, cost: float = 1.0) -> float:
        """Block until ``cost`` fits in ``pool``'s window, record it, return seconds waited."""
        p = self._pool(pool)
        if cost > p.capacity:
            raise ExchangeConfigError(
                f"rate_limits: one request costs {cost} but pool {pool!r} admits only {p.capacity:g} "
                f"per {p.window_s:g}s window after the safety margin; raise limit_per_s or lower the cost")
        waited = 0.0
        counted_pause = False
        while True:
            with self._lock:
                now = self.clock()
                p.expire(now)
                wait = p.wait_for(cost, now)
                if wait <= 0.0:
                    p.events.append((now, cost))
                    p.spent += cost
                    m = p.metrics
                    m.requests += 1
                    m.cost += cost
                    m.peak_rate = max(m.peak_rate, p.spent / p.window_s)
                    m.paused_s += waited
                    self._maybe_alert(p)
                    return waited
                if not counted_pause:
                    p.metrics.pauses += 1
                    counted_pause = True
            self.sleep(wait)
            waited += wait

    def _maybe_alert(self, p: _Pool) -> None:
        used = p.spent / (p.limit_per_s * p.window_s)
        if used >= self.config.alert_threshold:
            if not p.alerting:
                p.alerting = True
                p.metrics.alerts += 1
                log.warning("rate pool %r at %.0f%% of %g req/%gs (alert threshold %.0f%%)",
                            p.name, 100 * used, p.limit_per_s * p.window_s, p.window_s,
                            100 * self.config.alert_threshold)
        elif used < 0.75 * self.config.alert_threshold:
            p.alerting = False  # hysteresis: one alert per burst, not one per request at the edge

    # -- learning from the server -----------------------------------------------------
    def pause(self, pool: str, seconds: float, reason: str) -> None:
        p = self._pool(pool)
        with self._lock:
            until = self.clock() + max(0.0, seconds)
            if until > p.paused_until:
                p.paused_until = until
                p.metrics.server_pauses += 1
                log.warning("rate pool %r paused %.3fs: %s", pool, seconds, reason)

    def observe(self, pool: str, status: int | None, headers: Mapping[str, str] | None) -> None:
        """Learn from one response's status and headers."""
        h = {str(k).lower(): v for k, v in (headers or {}).items()}
        p = self._pool(pool)
        if status == 429:
            with self._lock:
                p.metrics.rate_limited += 1
        if not self.config.learn_from_headers:
            return
        retry_after = _seconds(h.get("retry-after"))
        if retry_after is not None:
            self.pause(pool, retry_after, f"Retry-After {h.get('retry-after')} (HTTP {status})")
        elif status == 429:
            self.pause(pool, p.window_s, "HTTP 429 without Retry-After")
        remaining = _seconds(h.get("x-ratelimit-remaining"))
        if remaining is not None and remaining <= 0:
            reset = _seconds(h.get("x-ratelimit-reset"))
            if reset is not None and reset > 1e6:  # an epoch timestamp, not a delay
                reset = max(0.0, reset - time.time())
            self.pause(pool, p.window_s if reset is None else reset, "x-ratelimit-remaining is 0")

    # -- read-out ---------------------------------------------------------------------
    def metrics(self) -> dict[str, PoolMetrics]:
        with self._lock:
            return {name: PoolMetrics(**{**p.metrics.__dict__, "extra": {
                "limit_per_s": p.limit_per_s, "capacity_per_window": p.capacity,
                "window_s": p.window_s}}) for name, p in self._pools.items()}

    def _pool(self, pool: str) -> _Pool:
        try:
            return self._pools[pool]
        except KeyError:
            raise ExchangeConfigError(
                f"rate_limits.pools: no pool named {pool!r} (configured: {', '.join(self._pools)})") from None


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    try:
        return float(str(value).strip())
    except ValueError:
        return None  # an HTTP-date Retry-After: rare on Coinbase; the 429 fallback pauses one window
