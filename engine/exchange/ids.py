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


def to_native(client_order_id: str, style: str) -> str:
    """Our id as the exchange takes it: ``prefixed`` as is (Coinbase, Binance: up to 36 characters of
    ``[.A-Z:/a-z0-9_-]``); ``uuid``: its 32 hex digits as 8-4-4-4-12 (Kraken's ``cl_ord_id`` takes a
    UUID or at most 18 characters of free text)."""
    if style == "uuid" and client_order_id.startswith(PREFIX) and len(client_order_id) == len(PREFIX) + 32:
        h = client_order_id[len(PREFIX):]
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return client_order_id


def from_native(native: str | None, style: str) -> str | None:
    """The inverse of ``to_native``: the exchange's echo of the id back to ours."""
    if native is None or style != "uuid":
        return native
    h = native.replace("-", "")
    if len(h) == 32 and all(c in "0123456789abcdef" for c in h):
        return PREFIX + h
    return native
