"""Checks an order against the product's rules as the exchange states them (ccxt's markets: status,
cancel-only / post-only / limit-only, size and price increments, minimum size and notional)
*before* it is sent, so a refusal is one clear line naming the exchange, the symbol, the value
found and what is expected, instead of an exchange error code (or ccxt silently truncating a
size or price to the increment).
"""
from __future__ import annotations

import math

from .types import MarketInfo, OrderRequest


def _off_grid(value: float, increment: float) -> bool:
    """``value`` is not a whole number of ``increment`` (up to float rounding)."""
    if not increment or increment <= 0:
        return False
    steps = value / increment
    return abs(steps - round(steps)) > max(1e-6, 1e-9 * abs(steps))


def _on_grid(value: float, increment: float, down: bool) -> float:
    steps = math.floor(value / increment + 1e-9) if down else math.ceil(value / increment - 1e-9)
    decimals = max(0, -int(math.floor(math.log10(increment)))) if increment < 1 else 0
    return round(steps * increment, decimals + 2)


def refusal(req: OrderRequest, m: MarketInfo, exchange: str, price: float | None) -> str | None:
    """Why ``exchange`` would refuse ``req`` on product ``m``, or None. ``price``: the limit, or for a
    market order the touch it would fill at (None when no quote is known: the notional is not checked)."""
    where = f"{exchange}: {req.symbol}"
    what = f"{req.side} {req.type} order"
    if m.status != "online" or m.trading_disabled:
        return (f"{where} is halted (status {m.status!r}{', trading disabled' if m.trading_disabled else ''}); "
                f"found a {what}, expected none until it trades again")
    if m.cancel_only:
        return f"{where} is cancel-only; found a new {what}, expected none until it trades again"
    if m.post_only and not (req.type == "limit" and req.post_only):
        return f"{where} is post-only; found a {what}{'' if req.type == 'market' else ' (not post-only)'}, " \
               "expected a post-only limit order"
    if m.limit_only and req.type == "market":
        return f"{where} is limit-only; found a {what}, expected a limit order"
    qty = float(req.qty)
    if not qty > 0:
        return f"{where} order size {qty:g} {m.base}; expected a positive size"
    if qty < m.min_size - 1e-12:
        return f"{where} order size {qty:g} {m.base} is under the minimum size {m.min_size:g} {m.base}"
    if _off_grid(qty, m.size_increment):
        return (f"{where} order size {qty!r} {m.base} is not a multiple of the size increment {m.size_increment:g}; "
                f"expected e.g. {_on_grid(qty, m.size_increment, True):g}")
    if req.stop_price is not None and _off_grid(float(req.stop_price), m.price_increment):
        return (f"{where} stop price {float(req.stop_price)!r} is not a multiple of the price increment "
                f"{m.price_increment:g}; expected e.g. {_on_grid(float(req.stop_price), m.price_increment, True):g}")
    if req.type != "market" and req.limit_price is not None and _off_grid(float(req.limit_price), m.price_increment):
        return (f"{where} limit price {float(req.limit_price)!r} is not a multiple of the price increment "
                f"{m.price_increment:g}; expected e.g. {_on_grid(float(req.limit_price), m.price_increment, req.side == 'buy'):g}")
    if price is not None and price > 0 and m.min_notional > 0:
        notional = qty * price
        if notional < m.min_notional - 1e-9:
            return (f"{where} order notional {notional:.8g} {m.quote} ({qty:g} x {price:g}) is under the minimum "
                    f"notional {m.min_notional:g} {m.quote}")
    return None
