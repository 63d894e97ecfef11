"""The emulator's account: balances, orders, fills and the matcher.

Orders match against the simulated bid/ask (no depth): marketable orders fill as taker
at the touch, resting limit orders fill as maker at their limit once the touch crosses
them. A stop order (Coinbase's ``stop_limit_stop_limit_gtc``, which Kraken's stop-loss-limit and Binance's
STOP_LOSS_LIMIT are placed as too; a stop-market inside the engine)
rests untriggered until the price path reaches its stop price: a low at or below it for
``STOP_DIRECTION_STOP_DOWN`` (a stop loss), a high at or above it for ``STOP_UP`` (a take
profit), in any step since it was last checked, or the touch there now. Triggered, it is
matched as the limit (or market) order it becomes, by the same fill logic. A sell with
``STOP_UP`` is a take-profit (Kraken take-profit-limit, Binance TAKE_PROFIT_LIMIT). An order
list (``place(..., list_id=, shared=)``: Binance's OCO) holds the base once for all its legs:
the leg that triggers or fills first takes the hold and the others expire (status
``EXPIRED``), as Binance expires the other leg; cancelling any leg cancels the list. A
Coinbase bracket (``trigger_bracket_gtc`` {base_size, limit_price, stop_trigger_price}, a sell)
is one order: a limit at ``limit_price`` (the take-profit) that, once the path falls to
``stop_trigger_price``, becomes a stop-limit ``BRACKET_LIMIT`` under the trigger (the engine's
``BRACKET_STOP_LIMIT``, engine/exchange/profiles.py). A ``gap`` price fault (faults.py) fires when
a stop-loss sell comes to rest: its product's path gaps down from the next step on. Order and fill timestamps are wall-clock (orders happen now, as on Coinbase);
only market data follows the simulated clock. ``client_order_id`` is idempotent: the
same id returns the original order and creates nothing.
"""
from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .market import SimMarket

# order configurations the engine takes; stops by the order type they become once triggered
_STOPS = {"stop_limit_stop_limit_gtc": "STOP_LIMIT", "stop_market": "STOP"}
BRACKET = "trigger_bracket_gtc"  # a limit sell at limit_price with a stop trigger under it (Coinbase)
BRACKET_LIMIT = 0.05  # a triggered bracket's stop-limit sits this far under its trigger (Coinbase's 5%)
_KINDS = ("market_market_ioc", "limit_limit_gtc", *_STOPS, BRACKET)
_DIRECTIONS = ("STOP_DIRECTION_STOP_DOWN", "STOP_DIRECTION_STOP_UP")

MAKER_FEE = 0.004
TAKER_FEE = 0.006
EPS = 1e-12


def iso_ms(ms: float) -> str:
    t = time.gmtime(ms / 1000.0)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(ms) % 1000:03d}Z"


@dataclass
class SimOrder:
    order_id: str
    client_order_id: str
    product_id: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT
    size: float  # base target
    limit_price: float | None
    post_only: bool
    config: dict  # order_configuration as received
    created_ms: float
    status: str = "OPEN"
    filled: float = 0.0
    filled_value: float = 0.0
    fees: float = 0.0
    hold: float = 0.0  # amount still held (quote for buys, base for sells)
    hold_ccy: str = ""
    partial_fraction: float | None = None  # fault: the next match fills only this fraction
    eligible_index: int | None = None  # fault: no fill before this market step ...
    eligible_ms: float | None = None  # ... or before this wall time
    stop_price: float | None = None  # a stop order: untriggered until the path reaches this
    stop_direction: str | None = None  # STOP_DIRECTION_STOP_DOWN | STOP_DIRECTION_STOP_UP
    triggered: bool = False
    checked_index: int = 0  # the last market step the trigger has seen
    list_id: str | None = None  # an order list's legs (Binance OCO) share it and one hold
    bracket: bool = False  # a bracket: a limit at limit_price until its stop triggers

    def to_api(self) -> dict:
        avg = self.filled_value / self.filled if self.filled > 0 else 0.0
        return {
            "order_id": self.order_id, "client_order_id": self.client_order_id,
            "product_id": self.product_id, "user_id": "emulator", "side": self.side,
            "order_configuration": self.config, "status": self.status,
            "time_in_force": "IMMEDIATE_OR_CANCEL" if self.type in ("MARKET", "STOP") else "GOOD_UNTIL_CANCELLED",
            "created_time": iso_ms(self.created_ms), "completion_percentage": f"{100 * self.filled / self.size:.2f}",
            "filled_size": repr(self.filled), "average_filled_price": repr(avg),
            "number_of_fills": "0", "filled_value": repr(self.filled_value), "total_fees": repr(self.fees),
            "order_type": "BRACKET" if self.bracket else self.type, "product_type": "SPOT", "settled": self.status != "OPEN",
            "outstanding_hold_amount": repr(self.hold), "post_only": self.post_only,
        }


class Rejection(Exception):
    def __init__(self, code: str, message: str):
        self.code, self.message = code, message
        super().__init__(f"{code}: {message}")


@dataclass
class Account:
    available: dict[str, float] = field(default_factory=dict)
    hold: dict[str, float] = field(default_factory=dict)


class OrderBook:
    def __init__(self, market: SimMarket, balances: dict[str, float], seed: int = 7, faults=None):
        self.market = market
        self.faults = faults  # the emulator's FaultPlan: its price faults (``gap``) are taken here
        self.account = Account(dict(balances), {c: 0.0 for c in balances})
        self.orders: dict[str, SimOrder] = {}
        self.by_client: dict[str, str] = {}
        self.fills: list[dict] = []
        self.seed = seed
        self.lock = threading.RLock()
        self._n = 0
        self.volume_usd = 0.0

    # -- ids --------------------------------------------------------------------------
    def _next_id(self, kind: str) -> str:
        self._n += 1
        h = hashlib.sha256(f"{self.seed}|{kind}|{self._n}".encode()).hexdigest()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    # -- orders -----------------------------------------------------------------------
    def place(self, body: dict, fault: dict | None = None, list_id: str | None = None,
              shared: SimOrder | None = None) -> tuple[SimOrder, bool]:
        """Create (or find, by client_order_id) an order. Returns (order, created). ``list_id``: a
        leg of that order list; ``shared``: a leg of it already placed, whose hold this one shares
        (nothing more is held, and the new leg is not matched now: a list's legs rest)."""
        with self.lock:
            cid = str(body.get("client_order_id") or "")
            if not cid:
                raise Rejection("INVALID_ARGUMENT", "client_order_id is required")
            if cid in self.by_client:
                return self.orders[self.by_client[cid]], False
            pid = body.get("product_id")
            product = self.market.products.get(pid)
            if product is None:
                raise Rejection("INVALID_PRODUCT_ID", f"unknown product {pid!r}")
            side = str(body.get("side", "")).upper()
            if side not in ("BUY", "SELL"):
                raise Rejection("INVALID_SIDE", f"side {side!r}")
            conf = body.get("order_configuration") or {}
            kind, spec = next(iter(conf.items())) if conf else (None, {})
            if kind not in _KINDS:
                raise Rejection("UNSUPPORTED_ORDER_CONFIGURATION", f"{kind!r} is not supported by the emulator")
            if product.trading_disabled or product.cancel_only or product.status != "online":
                raise Rejection("ORDER_ENTRY_DISABLED", f"{pid} is not accepting new orders")
            quote = self.market.quote(pid)
            if quote is None:
                raise Rejection("INVALID_NO_LIQUIDITY", f"{pid} has no quote now")
            bid, ask = quote
            post_only = bool(spec.get("post_only", False))
            if kind == "market_market_ioc":
                if product.limit_only or product.post_only:
                    raise Rejection("INVALID_ORDER_CONFIG", f"{pid} accepts limit orders only")
                if "base_size" in spec:
                    size = float(spec["base_size"])
                else:
                    size = float(spec["quote_size"]) / ask
                    size = int(size / product.base_increment + 1e-9) * product.base_increment
                limit = None
                otype = "MARKET"
            elif kind == BRACKET:
                if side != "SELL":
                    raise Rejection("UNSUPPORTED_ORDER_CONFIGURATION", "the emulator takes SELL brackets only")
                size, limit, otype = float(spec["base_size"]), float(spec["limit_price"]), "LIMIT"
                stop, direction = float(spec["stop_trigger_price"]), "STOP_DIRECTION_STOP_DOWN"
                if not 0 < stop < limit:
                    raise Rejection("INVALID_PRICE", f"stop_trigger_price {stop} must be > 0 and under limit_price {limit}")
                if bid <= stop:
                    raise Rejection("INVALID_STOP_PRICE", f"stop_trigger_price {stop} would trigger now (bid {bid})")
            elif kind in _STOPS:
                size = float(spec["base_size"])
                limit = float(spec["limit_price"]) if "limit_price" in spec else None
                otype = _STOPS[kind]
                stop = float(spec["stop_price"])
                direction = spec.get("stop_direction") or ""
                if direction not in _DIRECTIONS:
                    raise Rejection("INVALID_STOP_DIRECTION", f"stop_direction {direction!r}; expected one of "
                                    f"{', '.join(_DIRECTIONS)}")
                if not stop > 0 or (limit is not None and not limit > 0):
                    raise Rejection("INVALID_PRICE", f"stop_price {stop} and limit_price {limit} must be > 0")
                # Coinbase refuses a stop that would trigger at once
                if (direction == "STOP_DIRECTION_STOP_DOWN" and bid <= stop) or \
                        (direction == "STOP_DIRECTION_STOP_UP" and (bid if side == "SELL" else ask) >= stop):
                    raise Rejection("INVALID_STOP_PRICE", f"stop_price {stop} would trigger now (bid {bid}, ask {ask})")
            else:
                size = float(spec["base_size"])
                limit = float(spec["limit_price"])
                otype = "LIMIT"
                crosses = (side == "BUY" and ask <= limit) or (side == "SELL" and bid >= limit)
                if (post_only or product.post_only) and crosses:
                    raise Rejection("INVALID_LIMIT_PRICE_POST_ONLY", "post-only order would cross the book")
            if size < product.base_min_size - EPS:
                raise Rejection("INVALID_SIZE", f"size {size} below base_min_size {product.base_min_size}")
            ref = ask if side == "BUY" else bid
            if size * (limit or ref) < product.quote_min_size - EPS:
                raise Rejection("INVALID_SIZE", f"notional below quote_min_size {product.quote_min_size}")
            # Funds: buys hold quote (at the worse of limit and ask, plus taker fee), sells hold base.
            if side == "BUY":
                need, ccy = size * max(limit or 0.0, ask) * (1 + TAKER_FEE), product.quote
            else:
                need, ccy = size, product.base
            if shared is not None:
                need = 0.0  # the list holds its base once, on its first leg
            if self.account.available.get(ccy, 0.0) + EPS < need:
                raise Rejection("INSUFFICIENT_FUND", "Insufficient balance in source account")
            self.account.available[ccy] -= need
            self.account.hold[ccy] = self.account.hold.get(ccy, 0.0) + need
            order = SimOrder(self._next_id("order"), cid, pid, side, otype, size, limit, post_only,
                             conf, time.time() * 1000.0, hold=need, hold_ccy=ccy, list_id=list_id)
            if kind in _STOPS or kind == BRACKET:
                order.stop_price, order.stop_direction = stop, direction
                order.checked_index = self.market.index
                order.bracket = kind == BRACKET
            if fault:
                if fault.get("kind") == "partial_fill":
                    order.partial_fraction = float(fault.get("fraction", 0.5))
                if fault.get("kind") == "delayed_fill":
                    if "steps" in fault:
                        order.eligible_index = self.market.index + int(fault["steps"])
                    else:
                        order.eligible_ms = time.time() * 1000.0 + 1000.0 * float(fault.get("seconds", 1.0))
            self.orders[order.order_id] = order
            self.by_client[cid] = order.order_id
            if list_id is None:
                self._match(order, taker=True)
            if order.stop_direction == "STOP_DIRECTION_STOP_DOWN" and side == "SELL" and self.faults is not None:
                gap = self.faults.take_price("gap")  # a stop loss rests: the price gaps through it next step
                if gap is not None:
                    self.market.gap(pid, float(gap.params.get("fraction", 0.1)))
            return order, True

    def discard(self, order_id: str) -> None:
        """Undo a leg placed moments ago whose list was refused (it never rested, nothing filled)."""
        with self.lock:
            o = self.orders.pop(order_id)
            self.by_client.pop(o.client_order_id, None)
            self._release(o)

    def legs(self, o: SimOrder) -> list[SimOrder]:
        """The other legs of ``o``'s order list (none for a plain order)."""
        if o.list_id is None:
            return []
        return [x for x in self.orders.values() if x.list_id == o.list_id and x is not o]

    def _expire_others(self, o: SimOrder) -> None:
        """``o`` triggered or fills: the list's other legs expire and ``o`` takes over their hold."""
        for x in self.legs(o):
            if x.status == "OPEN":
                o.hold += x.hold
                x.hold = 0.0
                x.status = "EXPIRED"

    def cancel(self, order_id: str) -> tuple[bool, str]:
        with self.lock:
            o = self.orders.get(order_id)
            if o is None:
                return False, "UNKNOWN_CANCEL_ORDER"
            if o.status != "OPEN":
                return False, "UNKNOWN_CANCEL_ORDER" if o.status != "CANCELLED" else "DUPLICATE_CANCEL_REQUEST"
            for x in [o, *self.legs(o)]:  # a list is cancelled whole (Binance: any leg cancels the list)
                if x.status == "OPEN":
                    x.status = "CANCELLED"
                    self._release(x)
            return True, ""

    # -- matching ---------------------------------------------------------------------
    def match_all(self) -> None:
        with self.lock:
            for o in list(self.orders.values()):
                if o.status == "OPEN":
                    self._match(o, taker=o.type in ("MARKET", "STOP"))

    def _match(self, o: SimOrder, taker: bool) -> None:
        if o.eligible_index is not None and self.market.index < o.eligible_index:
            return
        if o.eligible_ms is not None and time.time() * 1000.0 < o.eligible_ms:
            return
        quote = self.market.quote(o.product_id)
        if quote is None:
            return
        bid, ask = quote
        product = self.market.products[o.product_id]
        if o.stop_price is not None and not o.triggered:
            if self._triggers(o, bid, ask):
                o.triggered, taker = True, True  # it reaches the book now: it takes what is there
                self._expire_others(o)
            elif not o.bracket:
                return  # (an untriggered bracket rests as its take-profit limit)
        limit = o.stop_price * (1 - BRACKET_LIMIT) if o.bracket and o.triggered else o.limit_price
        if o.type in ("MARKET", "STOP"):
            price, liq = (ask if o.side == "BUY" else bid), "TAKER"
        elif o.side == "BUY" and ask <= limit:
            price, liq = (ask, "TAKER") if taker else (limit, "MAKER")
        elif o.side == "SELL" and bid >= limit:
            price, liq = (bid, "TAKER") if taker else (limit, "MAKER")
        else:
            return
        remaining = o.size - o.filled
        qty = remaining
        if o.partial_fraction is not None:
            qty = max(product.base_increment, int(remaining * o.partial_fraction / product.base_increment)
                      * product.base_increment)
            o.partial_fraction = None
            # the rest waits for the next market step (thin book), not for the next request
            if self.market.speed:
                o.eligible_ms = time.time() * 1000.0 + self.market.step_ms / self.market.speed
            else:
                o.eligible_index = self.market.index + 1
        self._fill(o, min(qty, remaining), price, liq, product)

    def _triggers(self, o: SimOrder, bid: float, ask: float) -> bool:
        """Whether the price path reached ``o``'s stop in a step since the last check, or the touch now."""
        m = self.market
        now = m.index
        j = m.columns[o.product_id]
        steps = slice(o.checked_index + 1, now + 1)
        o.checked_index = max(o.checked_index, now)
        if o.stop_direction == "STOP_DIRECTION_STOP_DOWN":
            lows = m.low[steps, j]
            return bid <= o.stop_price or bool(lows.size and np.nanmin(lows) <= o.stop_price)
        highs = m.high[steps, j]
        touch = bid if o.side == "SELL" else ask  # a sell's take-profit: the bid it would sell at
        return touch >= o.stop_price or bool(highs.size and np.nanmax(highs) >= o.stop_price)

    def _fill(self, o: SimOrder, qty: float, price: float, liq: str, product) -> None:
        self._expire_others(o)
        rate = TAKER_FEE if liq == "TAKER" else MAKER_FEE
        value = qty * price
        fee = value * rate
        acc = self.account
        if o.side == "BUY":
            spend = min(value + fee, o.hold)
            o.hold -= spend
            acc.hold[product.quote] -= spend
            acc.available[product.base] = acc.available.get(product.base, 0.0) + qty
        else:
            take = min(qty, o.hold)
            o.hold -= take
            acc.hold[product.base] -= take
            acc.available[product.quote] = acc.available.get(product.quote, 0.0) + value - fee
        o.filled += qty
        o.filled_value += value
        o.fees += fee
        self.volume_usd += value
        now = time.time() * 1000.0
        self.fills.append({
            "entry_id": self._next_id("fill"), "trade_id": self._next_id("trade"), "order_id": o.order_id,
            "trade_time": iso_ms(now), "trade_type": "FILL", "price": repr(price), "size": repr(qty),
            "commission": repr(fee), "product_id": o.product_id, "sequence_timestamp": iso_ms(now),
            "liquidity_indicator": liq, "size_in_quote": False, "user_id": "emulator", "side": o.side,
            "_ms": now,
        })
        if o.size - o.filled <= product.base_increment * 0.5 + EPS:
            o.status = "FILLED"
            self._release(o)

    def _release(self, o: SimOrder) -> None:
        if o.hold > 0:
            self.account.hold[o.hold_ccy] -= o.hold
            self.account.available[o.hold_ccy] = self.account.available.get(o.hold_ccy, 0.0) + o.hold
            o.hold = 0.0

    # -- snapshots for tests ----------------------------------------------------------
    def snapshot(self) -> list[dict]:
        with self.lock:
            return [o.to_api() for o in self.orders.values()]
