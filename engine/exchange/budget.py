"""Per-pool request budgets that pause a caller *before* the exchange would refuse a request.

Each pool is counted the way its exchange counts it (the figures live in the profiles,
``conf/exchange/<id>.yaml``, with their sources in docs/exchange.md):

* ``window``: a sliding window of ``burst_s`` seconds holding at most ``limit_per_s * burst_s``
  cost (Coinbase's public/private requests per second; Binance's request weight per minute and
  orders per 10 s and per day). A sliding window (rather than a refilling token bucket) is used
  because a bucket of capacity C refilled at rate R admits C + R requests in one second, which
  overshoots the limit in exactly the bursts we care about; the window bounds every interval
  of ``burst_s``, which is how the exchange counts.
* ``decay``: a counter raised by each request's cost and drained at ``limit_per_s`` per second,
  refused above ``max_count`` (Kraken's per-key call counter and per-pair order counter).

``acquire_all`` admits a request only when *every* pool it charges has room after the
safety margin; otherwise it sleeps until the slowest pool has room, then records them all.

Spend above ``alert_threshold`` of the real limit logs one WARNING per crossing and counts it.
Server hints are learnt: ``Retry-After`` (Coinbase and Binance 429, Binance 418 ban) pauses every
pool the request charged; ``x-ratelimit-remaining: 0`` pauses until ``x-ratelimit-reset``; a
pool's ``used_header`` (Binance ``X-MBX-USED-WEIGHT-1M``) raises our count to the server's when
the server has counted more (another process on the same IP or key); a body marker (Kraken
``EAPI:Rate limit exceeded``) pauses the pool it names.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable, Iterable, Mapping

from .config import PoolConfig, RateLimitConfig
from .errors import ExchangeConfigError
from .types import PoolMetrics

log = logging.getLogger("rulebook.exchange.budget")

Charge = tuple[str, str, float]  # (pool name, counter key within the pool, cost)


def pool_of(api: object) -> str:
    """ccxt's api tag (e.g. ``['v3', 'private']``) -> public or private."""
    if isinstance(api, (list, tuple)):
        return "private" if "private" in api else "public"
    return "private" if api == "private" else "public"


def _tags(api: object) -> set[str]:
    if isinstance(api, (list, tuple)):
        return {str(a) for a in api}
    return {str(api)}


class _Counter:
    """One counter of a pool (a pool with ``per_param`` has one per value, e.g. per Kraken pair)."""

    def __init__(self, spec: PoolConfig, margin: float):
        self.spec = spec
        self.decay = spec.kind == "decay"
        self.window_s = spec.burst_s
        self.limit = float(spec.max_count) if self.decay else spec.limit_per_s * spec.burst_s
        self.capacity = self.limit * (1.0 - margin)
        self.events: deque[list[float]] = deque()  # window: [time, cost]; time moves to the answer's
        self.spent = 0.0  # window: cost inside the window; decay: the counter
        self.updated = 0.0  # decay: when ``spent`` was last drained
        self.paused_until = 0.0

    def expire(self, now: float) -> None:
        if self.decay:
            self.spent = max(0.0, self.spent - (now - self.updated) * self.spec.limit_per_s)
            self.updated = now
            return
        horizon = now - self.window_s
        while self.events and self.events[0][0] <= horizon:
            self.spent -= self.events.popleft()[1]
        if not self.events:
            self.spent = 0.0  # drop float drift

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` fits (0 if it fits now)."""
        if now < self.paused_until:
            return self.paused_until - now
        excess = self.spent + cost - self.capacity
        if excess <= 1e-12:
            return 0.0
        if self.decay:
            return max(excess / self.spec.limit_per_s, 1e-6)
        if not self.events:
            return 0.0
        freed = 0.0
        for t, c in self.events:
            freed += c
            if freed >= excess - 1e-12:
                return max(t + self.window_s - now, 1e-6)
        return max(self.events[-1][0] + self.window_s - now, 1e-6)

    def add(self, now: float, cost: float) -> list[float] | None:
        self.spent += cost
        if self.decay:
            return None
        event = [now, cost]
        self.events.append(event)
        return event

    def answered(self, event: list[float], now: float) -> None:
        """Move ``event`` to time ``now`` (and to the end: the deque stays in time order), unless it
        has expired already."""
        for i in range(len(self.events) - 1, -1, -1):  # it is near the end: just sent
            if self.events[i] is event:
                del self.events[i]
                event[0] = max(event[0], now)
                self.events.append(event)
                return

    def used(self) -> float:
        """Fraction of the real limit in use now."""
        return self.spent / self.limit


class _Pool:
    def __init__(self, name: str, spec: PoolConfig, margin: float):
        self.name = name
        self.spec = spec
        self.margin = margin
        self.counters: dict[str, _Counter] = {}
        self.alerting = False
        self.metrics = PoolMetrics()
        self.peak_used = 0.0  # highest counter / window spend seen, in the pool's own unit

    def counter(self, key: str) -> _Counter:
        c = self.counters.get(key)
        if c is None:
            c = self.counters[key] = _Counter(self.spec, self.margin)
        return c

    @property
    def capacity(self) -> float:
        return self.counter("").capacity if not self.counters else next(iter(self.counters.values())).capacity


class RateBudget:
    """Thread-safe; share one instance between every client that uses the same key and IP."""

    def __init__(self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._pools = {name: _Pool(name, p, config.safety_margin) for name, p in config.pools.items()}

    # -- costs ------------------------------------------------------------------------
    def cost_of(self, method: str, path: str) -> float:
        return float(self.config.endpoint_costs.get(f"{method.upper()} {path}", 1.0))

    def charges(self, api: object, method: str, path: str, params: Mapping | None = None,
                ccxt_cost: float | None = None) -> list[Charge]:
        """The pools one request charges and how much, from the profile's pool specs."""
        tags = _tags(api)
        endpoint = f"{method.upper()} {path}"
        out: list[Charge] = []
        for name, pool in self._pools.items():
            spec = pool.spec
            if spec.endpoints is not None:
                if endpoint not in spec.endpoints:
                    continue
                cost = float(spec.endpoints[endpoint])
            else:
                apis = spec.apis if spec.apis is not None else [name]
                if "*" not in apis and not (tags & set(apis)) and not (apis == [name] and pool_of(api) == name):
                    continue
                if endpoint in self.config.endpoint_costs:
                    cost = float(self.config.endpoint_costs[endpoint])
                elif spec.ccxt_cost_scale is not None and ccxt_cost is not None:
                    cost = float(ccxt_cost) * spec.ccxt_cost_scale
                else:
                    cost = 1.0
            if cost <= 0:
                continue
            key = ""
            if spec.per_param:
                key = str((params or {}).get(spec.per_param, ""))
            out.append((name, key, round(cost, 9)))
        return out

    # -- admission --------------------------------------------------------------------
    def acquire(self, pool: str, cost: float = 1.0, key: str = "") -> float:
        """Block until ``cost`` fits in ``pool``'s window, record it, return seconds waited."""
        return self.acquire_all([(pool, key, cost)])

    def acquire_all(self, charges: Iterable[Charge]) -> float:
        """Block until every charge fits in its pool, record them all, return seconds waited."""
        return self.admit(charges)[0]

    def admit(self, charges: Iterable[Charge]) -> tuple[float, list]:
        """``acquire_all``, also returning the window events it recorded: pass them to ``answered``
        when the response arrives."""
        charges = list(charges)
        for name, key, cost in charges:
            p = self._pool(name)
            c = p.counter(key)
            if cost > c.capacity:
                raise ExchangeConfigError(
                    f"rate_limits: one request costs {cost:g} but pool {name!r} admits only {c.capacity:g} "
                    f"after the safety margin; raise its limit or lower the cost")
        waited = 0.0
        counted: set[str] = set()
        while True:
            with self._lock:
                now = self.clock()
                wait = 0.0
                for name, key, cost in charges:
                    c = self._pools[name].counter(key)
                    c.expire(now)
                    w = c.wait_for(cost, now)
                    if w > 0 and name not in counted:
                        self._pools[name].metrics.pauses += 1
                        counted.add(name)
                    wait = max(wait, w)
                if wait <= 0.0:
                    events = [self._record(self._pools[name], key, cost, now, waited) for name, key, cost in charges]
                    return waited, [e for e in events if e is not None]
            self.sleep(wait)
            waited += wait

    def answered(self, events: Iterable[tuple["_Counter", list[float]]]) -> None:
        """A request's answer came back: count its window events from now, not from when it was sent.
        The server counted it at some moment in between; counting from the later end means network
        and server latency (jitter under load) can never leave the server's window fuller than ours."""
        with self._lock:
            now = self.clock()
            for c, e in events:
                c.answered(e, now)

    def _record(self, p: _Pool, key: str, cost: float, now: float, waited: float):
        c = p.counter(key)
        event = c.add(now, cost)
        event = None if event is None else (c, event)
        m = p.metrics
        m.requests += 1
        m.cost += cost
        p.peak_used = max(p.peak_used, c.spent)
        # window pools: cost per second inside the window; decay pools: the counter's peak
        m.peak_rate = max(m.peak_rate, c.spent if c.decay else c.spent / c.window_s)
        m.paused_s += waited
        self._maybe_alert(p, c)
        return event

    def _maybe_alert(self, p: _Pool, c: _Counter) -> None:
        used = c.used()
        if used >= self.config.alert_threshold:
            if not p.alerting:
                p.alerting = True
                p.metrics.alerts += 1
                log.warning("rate pool %r at %.0f%% of its limit %g (alert threshold %.0f%%)",
                            p.name, 100 * used, c.limit, 100 * self.config.alert_threshold)
        elif used < 0.75 * self.config.alert_threshold:
            p.alerting = False  # hysteresis: one alert per burst, not one per request at the edge

    # -- learning from the server -----------------------------------------------------
    def pause(self, pool: str, seconds: float, reason: str, key: str | None = None) -> None:
        p = self._pool(pool)
        with self._lock:
            until = self.clock() + max(0.0, seconds)
            counters = [p.counter(key)] if key is not None else (list(p.counters.values()) or [p.counter("")])
            if any(until > c.paused_until for c in counters):
                for c in counters:
                    c.paused_until = max(c.paused_until, until)
                p.metrics.server_pauses += 1
                log.warning("rate pool %r paused %.3fs: %s", pool, seconds, reason)

    def observe(self, pools: str | Iterable[Charge], status: int | None, headers: Mapping[str, str] | None,
                body: str | None = None) -> None:
        """Learn from one response's status, headers and body; ``pools``: what the request charged."""
        charged = [(pools, "", 1.0)] if isinstance(pools, str) else list(pools)
        names = [n for n, _, _ in charged]
        h = {str(k).lower(): v for k, v in (headers or {}).items()}
        limited = status in (418, 429)
        if limited:
            with self._lock:
                for n in names:
                    self._pool(n).metrics.rate_limited += 1
        if not self.config.learn_from_headers:
            return
        self._sync_used(h)
        retry_after = _seconds(h.get("retry-after"))
        for name, key, _ in charged:
            p = self._pool(name)
            if retry_after is not None:
                self.pause(name, retry_after, f"Retry-After {h.get('retry-after')} (HTTP {status})")
            elif limited:
                self.pause(name, max(self.config.pause_on_limited_s, 0.0 if p.spec.kind == "decay" else p.spec.burst_s),
                           f"HTTP {status} without Retry-After")
        if body and self.config.limited_markers:
            for marker, pool in self.config.limited_markers.items():
                if marker in body and pool in self._pools:
                    key = next((k for n, k, _ in charged if n == pool), None)
                    with self._lock:
                        self._pools[pool].metrics.rate_limited += 1
                    self.pause(pool, self.config.pause_on_limited_s, f"the exchange answered {marker!r}", key)
        remaining = _seconds(h.get("x-ratelimit-remaining"))
        if remaining is not None and remaining <= 0:
            reset = _seconds(h.get("x-ratelimit-reset"))
            if reset is not None and reset > 1e6:  # an epoch timestamp, not a delay
                reset = max(0.0, reset - time.time())
            for name in names:
                self.pause(name, self._pool(name).spec.burst_s if reset is None else reset, "x-ratelimit-remaining is 0")

    def _sync_used(self, h: Mapping[str, str]) -> None:
        """The server's own count (Binance X-MBX-USED-WEIGHT-1M, X-MBX-ORDER-COUNT-10S/1D) above ours
        means someone else spends the same pool: count the difference as spent now."""
        for p in self._pools.values():
            header = p.spec.used_header
            if not header or header.lower() not in h:
                continue
            used = _seconds(h[header.lower()])
            if used is None:
                continue
            with self._lock:
                now = self.clock()
                c = p.counter("")
                c.expire(now)
                if used > c.spent + 1e-9:
                    c.add(now, used - c.spent)
                    p.peak_used = max(p.peak_used, c.spent)

    # -- read-out ---------------------------------------------------------------------
    def metrics(self) -> dict[str, PoolMetrics]:
        with self._lock:
            out = {}
            for name, p in self._pools.items():
                s = p.spec
                limit = float(s.max_count) if s.kind == "decay" else s.limit_per_s * s.burst_s
                out[name] = PoolMetrics(**{**p.metrics.__dict__, "extra": {
                    "kind": s.kind, "limit_per_s": s.limit_per_s, "window_s": s.burst_s, "limit": limit,
                    "capacity_per_window": limit * (1.0 - self.config.safety_margin),
                    "peak_used": p.peak_used, "counters": max(1, len(p.counters))}})
            return out

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
        return None  # an HTTP-date Retry-After: rare; the 429 fallback pauses one window
