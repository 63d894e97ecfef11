"""Deterministic client order ids: the same decision always names the same order."""
from __future__ import annotations

import hashlib

PREFIX = "rb-"


def make_client_order_id(run_id: str, cycle_ts_ms: int, symbol: str, side: str, seq: int) -> str:
    """A stable 35-character id for the ``seq``-th order of ``symbol``/``side`` in a cycle.

    Re-running a cycle (after a crash, or when a create's response was lost) yields the
    same id, so Coinbase's ``client_order_id`` idempotency turns a resend into a lookup
    instead of a second order.
    """
    if side not in ("buy", "sell"):
        raise ValueError(f"make_client_order_id: side is {side!r}; expected 'buy' or 'sell'")
    key = f"{run_id}|{int(cycle_ts_ms)}|{symbol}|{side}|{int(seq)}"
    return PREFIX + hashlib.sha256(key.encode()).hexdigest()[:32]
