"""Faults the emulator injects on demand.

``faults.add(kind, endpoint=None, times=1, **params)`` queues a fault for the next
``times`` requests to ``endpoint`` (a route name such as ``"create_order"``; None = any).

HTTP faults (decided before the request is processed unless noted):
  rate_limit      429 with Retry-After; params: retry_after=1.0, body="v3" | "text" | "v2"
  server_error    5xx; params: status=503
  timeout         sleep ``delay_s`` (past the client's timeout) and *then* process and answer
  drop            close the connection without any response; nothing is processed
  lost_response   process the request (the order is created), then close without a response
  reject          create_order answers HTTP 200 success:false; params: code="INSUFFICIENT_FUND"
Matching faults (create_order only; the request succeeds):
  partial_fill    the first match fills only ``fraction`` (default 0.5); the rest later
  delayed_fill    no fill until ``steps`` market steps have passed (or ``seconds`` of wall time)
Price faults (no endpoint: the order book takes them, ``take_price``, never a request):
  gap             once the book accepts the next stop-loss sell (a stop-limit triggering on a fall,
                  an OCO's stop leg, a bracket), its product's path gaps down by ``fraction``
                  (default 0.1) from the next market step on (``SimMarket.gap``): that bar opens and
                  trades through the stop and its limit, so the stop triggers and rests unfilled
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

KINDS = ("rate_limit", "server_error", "timeout", "drop", "lost_response", "reject",
         "partial_fill", "delayed_fill", "gap")
MATCHING = ("partial_fill", "delayed_fill")
PRICE = ("gap",)


@dataclass
class Fault:
    kind: str
    endpoint: str | None
    times: int
    params: dict = field(default_factory=dict)


class FaultPlan:
    def __init__(self):
        self._queue: list[Fault] = []
        self._lock = threading.Lock()
        self.fired: list[tuple[str, str]] = []  # (kind, endpoint) in firing order

    def add(self, kind: str, endpoint: str | None = None, times: int = 1, **params) -> None:
        if kind not in KINDS:
            raise ValueError(f"emulator fault kind {kind!r}; expected one of {', '.join(KINDS)}")
        if kind in MATCHING + ("reject",) and endpoint not in (None, "create_order"):
            raise ValueError(f"emulator fault {kind!r} applies to create_order only, not {endpoint!r}")
        if kind in MATCHING + ("reject",):
            endpoint = "create_order"
        if kind in PRICE and endpoint is not None:
            raise ValueError(f"emulator fault {kind!r} is a price fault (the order book takes it), not one of {endpoint!r}")
        with self._lock:
            self._queue.append(Fault(kind, endpoint, int(times), params))

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> int:
        with self._lock:
            return sum(f.times for f in self._queue)

    def take(self, endpoint: str) -> Fault | None:
        """Consume one use of the first fault that matches ``endpoint``."""
        with self._lock:
            for f in self._queue:
                if f.kind not in PRICE and (f.endpoint is None or f.endpoint == endpoint):
                    return self._use(f, endpoint)
            return None

    def take_price(self, kind: str) -> Fault | None:
        """Consume one use of the first price fault of ``kind`` (fired as ``(kind, "market")``)."""
        with self._lock:
            f = next((f for f in self._queue if f.kind == kind), None)
            return None if f is None else self._use(f, "market")

    def _use(self, f: Fault, endpoint: str) -> Fault:
        f.times -= 1
        if f.times <= 0:
            self._queue.remove(f)
        self.fired.append((f.kind, endpoint))
        return Fault(f.kind, endpoint, 1, dict(f.params))
