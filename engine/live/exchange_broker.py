"""The exchange broker (live): real orders through engine/exchange's adapter.

Every order carries our client order id (recorded in the state file before it is sent);
fills are adopted from the exchange's fill list by trade id, so a restart never counts one
twice. A limit order (execution rule file ``order: {type: limit, offset_bps: X}``) is placed
as a real limit order at the decided limit (rounded to the product's price increment on the
safe side: buys down, sells up) and is good for one bar: still open at the next cycle, it is
cancelled, as the backtest cancels it at its fill bar's end.

A strategy's ``protect:`` block: stops on the exchange where its profile takes them, the rest
enforced at each cycle (engine/live/protect_orders.py). Stop and take-profit rows (an OCO list's
legs each a row with its ``list_id``) are the positions' protection, not a decision's order: they
commit no cash or quantity against a decision, the kill switch leaves them resting, and an exit
rule's sell cancels its symbol's protection first.
"""
from __future__ import annotations

import copy
import math

import numpy as np

from engine.exchange.errors import ExchangeCallError
from engine.exchange.types import OcoRequest, OrderRequest
from engine.live import pstate
from engine.live.brokers import insert_fill, stored_fills
from engine.live.port import Balances, BrokerContext, BrokerFill, Note, OrderTicket
from engine.live.protect_orders import PROTECTIVE, TAKE, ExchangeProtections, describe, fill_rule, open_stops
from engine.live.store import now_ms

# why a recorded protection is not sent after a restart: the bid passed its level while the loop was down
_PAST = {TAKE: "the bid is at or over its take-profit after restart",
         "bracket": "the bid is past a level of the bracket after restart"}
_STATUS = {"open": "open", "closed": "filled", "canceled": "canceled", "rejected": "rejected", "unknown": "sent"}


def record_fill(ctx: BrokerContext, db, f: BrokerFill) -> None:
    """Insert a fill and apply it to the book's portfolio (inside the caller's txn)."""
    insert_fill(ctx, db, f)
    j = ctx.index[f.symbol]
    pstate.apply_fill(ctx.book.pf, j, f.side, f.qty, f.price, f.fee, f.t, f.rule, float(ctx.size_increment[j]))


def limit_for_exchange(price: float, increment: float, side: str) -> float:
    """The decided limit on the exchange's price grid, never worse for us than decided."""
    if not increment or increment <= 0:
        return price
    steps = price / increment
    steps = math.floor(steps + 1e-9) if side == "buy" else math.ceil(steps - 1e-9)
    decimals = max(0, -int(math.floor(math.log10(increment)))) if increment < 1 else 0
    return round(steps * increment, decimals + 2)


class ExchangeBroker:
    places_orders = True

    def __init__(self, adapter):
        self.adapter = adapter
        self.last_t: int | None = None
        self.protections = ExchangeProtections(self)
        self._market = None  # the panel settle saw (a submit's new positions get their stops on it)

    # -- the port -------------------------------------------------------------------------------
    def reconcile(self, ctx: BrokerContext) -> None:
        """Settle every order whose fate we did not record, then adopt the fills we missed."""
        if ctx.book.protect.active:
            # said at start: what protects a live position, and who (docs/live.md)
            level, said = describe(ctx.book.protect, self.adapter.config)
            ctx.alert(level, "protections", said, None)
        lists: set[str] = set()
        for o in ctx.store.open_orders():
            if o.get("list_id"):  # an order list's legs are settled together, once
                if o["list_id"] not in lists:
                    lists.add(o["list_id"])
                    self.protections.reconcile_list(ctx, [r for r in ctx.store.open_orders()
                                                          if r.get("list_id") == o["list_id"]])
                continue
            cid = o["client_order_id"]
            st = self.adapter.fetch_order_by_client_id(cid, o["symbol"], _recorded_ms(o))
            halted = o["side"] == "buy" and ctx.entries_halted()
            stop = o["type"] in PROTECTIVE
            if st is None:
                held = ctx.book.pf.qty[ctx.index[o["symbol"]]] > 0
                # a stop the price fell through (a take-profit it rose to) while we were down would be
                # refused: the protection's next step sells the position at market instead
                through = stop and held and o["status"] == "new" and self.protections.bid_through(o)
                if o["status"] == "new" and not through and (held if stop else ctx.order_is_fresh(o) and not halted):
                    ctx.alert("warning", "resend", f"order {cid} was recorded but never reached the exchange; "
                              "sending it now (same client order id)", o["t"])
                    self._send_one(ctx, OrderTicket.from_row(o))
                else:
                    reason = ("kill switch on" if halted and o["status"] == "new" else
                              _PAST.get(o["type"], "the bid is through its stop price after restart") if through else
                              "not at the exchange after restart")
                    with ctx.store.txn() as db:
                        ctx.store.update_order(db, cid, status="abandoned", reason=reason)
                continue
            with ctx.store.txn() as db:
                self._update(ctx, db, cid, st)
            if st.status == "open" and ctx.settings.open_orders_on_start == "cancel" and not stop:
                self.cancel(ctx, cid)  # a stop protects a position: it rests
        self.protections.adopt(ctx)
        self.sync_fills(ctx)

    def settle(self, ctx: BrokerContext, market, t: int) -> None:
        """Before deciding at bar t: learn every open order's fate, cancel limit orders that have had
        their bar, then adopt the fills."""
        self.last_t, self._market = t, market
        self.refresh_open(ctx)
        for o in ctx.store.open_orders():
            if o["type"] == "limit" and o["status"] == "open" and int(o["t"]) < t:
                self.cancel(ctx, o["client_order_id"])  # good for one bar
        self.sync_fills(ctx)
        self.protections.step(ctx, market, t)

    def available(self, ctx: BrokerContext, d, close: np.ndarray) -> tuple[object, list[Note]]:
        """A new decision, ``d`` trimmed to what open orders do not already commit. Orders still open hold what they will spend: an open buy's quantity is not bought again and
        its cost (at the ask, with the taker fee) is not spent again; an open sell's quantity is not sold
        again (nor topped up). Buys that cost more than the cash left are scaled down together, as in the backtest."""
        n = len(ctx.symbols)
        pf = ctx.book.pf
        buy, sell = np.zeros(n), np.zeros(n)
        for o in ctx.store.open_orders():
            if o["type"] in PROTECTIVE:
                continue  # a position's protection, not a decision's order
            left = max(float(o["qty"]) - float(o["filled"] or 0.0), 0.0)
            (buy if o["side"] == "buy" else sell)[ctx.index[o["symbol"]]] += left
        q = ctx.quotes()
        px = np.where(q.ask > 0, q.ask, close) if q is not None else close
        px = np.nan_to_num(px)
        rate = ctx.book.fees.tier(ctx.clock.now_ms()).taker_bps / 1e4
        inc = ctx.size_increment
        sell_qty = np.minimum(d.sell_qty, np.maximum(pf.qty - sell, 0.0))
        want = np.where(buy > 0, 0.0, d.buy_qty)  # being entered already: as if held (no top-up either)
        free = pf.cash - float((buy * px * (1.0 + rate)).sum())
        cost = float((want * px * (1.0 + rate)).sum())
        if cost > free:
            want = np.floor(want * max(free, 0.0) / cost / inc + 1e-9) * inc
        notes = []
        if (want < d.buy_qty - 1e-12).any() and (buy.any() or sell.any()):
            notes.append(("info", "open_orders", f"buys reduced by {int((buy > 0).sum())} open buy order(s) "
                          f"holding {pf.cash - free:.2f} of {pf.cash:.2f} cash"))
        out = copy.copy(d)  # decide's decision stays as decided
        out.sell_qty, out.buy_qty = sell_qty, want
        return out, notes

    def submit(self, ctx: BrokerContext, t: int, orders: list[OrderTicket], d) -> None:
        sells = {o.symbol for o in orders if o.side == "sell"}
        # a resting spot sell holds the base the exit sells
        self.protections.cancel(ctx, [s for s in open_stops(ctx) if s["symbol"] in sells])
        for o in orders:
            self._send_one(ctx, o)
        self.sync_fills(ctx)
        if self._market is not None and orders:
            self.protections.step(ctx, self._market, t)  # a filled entry gets its stop now

    def cancel(self, ctx: BrokerContext, client_order_id: str) -> None:
        try:
            st = self.adapter.cancel_order(client_order_id)
        except ExchangeCallError as e:
            ctx.alert("warning", "cancel_failed", f"cancel {client_order_id}: {e}", None)
            return
        with ctx.store.txn() as db:
            self._update(ctx, db, client_order_id, st)

    def cancel_list(self, ctx: BrokerContext, list_id: str, symbol: str, leg_ids: list[str]) -> None:
        """Cancel an order list (its every leg) and record each leg's fate."""
        try:
            states = self.adapter.cancel_list(list_id, symbol, leg_ids)
        except ExchangeCallError as e:
            ctx.alert("warning", "cancel_failed", f"cancel order list {list_id}: {e}", None)
            return
        with ctx.store.txn() as db:
            for st in states:
                self._update(ctx, db, st.client_order_id, st)

    def cancel_all(self, ctx: BrokerContext) -> int:
        n = 0
        for o in ctx.store.open_orders():
            if o["status"] in ("open", "sent") and o["type"] not in PROTECTIVE:  # protections keep protecting
                self.cancel(ctx, o["client_order_id"])
                n += 1
        return n

    def open_orders(self, ctx: BrokerContext) -> list[OrderTicket]:
        return [OrderTicket.from_row(o) for o in ctx.store.open_orders()]

    def fills_since(self, ctx: BrokerContext, cursor_ms: int) -> list[BrokerFill]:
        self.sync_fills(ctx)
        return stored_fills(ctx, cursor_ms)

    def balances(self, quote_currency: str) -> Balances:
        """The exchange account's real balances: a new live account starts from its cash (positions
        from what we trade)."""
        bal = self.adapter.balances()
        q = bal.get(quote_currency)
        return Balances(q.total if q else 0.0, {c: b.total for c, b in bal.items() if c != quote_currency})

    def finish(self, ctx: BrokerContext) -> None:
        """At session end: settle orders whose answer was lost, learn every open order's fate (one
        that filled since the last cycle is recorded filled, not left open) and adopt the last fills."""
        try:
            self._resolve_unknown(ctx)
            self.refresh_open(ctx)
            self.sync_fills(ctx)
        except ExchangeCallError as e:  # the next start's reconcile settles them
            ctx.alert("warning", "settle_failed", f"end-of-session settle: {e}", self.last_t)

    # -- the exchange's side --------------------------------------------------------------------
    def refresh_open(self, ctx: BrokerContext) -> None:
        """Ask the exchange about every order still open/sent in the state file (a late fill closes it)."""
        for o in ctx.store.open_orders():
            if o["status"] not in ("open", "sent"):
                continue
            try:
                st = self.adapter.fetch_order_by_client_id(o["client_order_id"], o["symbol"], _recorded_ms(o))
            except ExchangeCallError as e:  # stays open: its cash/quantity stays committed
                ctx.alert("warning", "order_unknown", f"order {o['client_order_id']}: {e}", self.last_t)
                continue
            if st is not None:
                with ctx.store.txn() as db:
                    self._update(ctx, db, o["client_order_id"], st)
            elif o["status"] == "sent" and _unknown_for_ms(o) > self.adapter.config.orders.recovery_lookback_s * 1000:
                # create's answer was lost and the exchange has not listed it for the whole recovery window:
                # it never got there. Settled as reconcile does, so its symbol and cash are free again
                # (a fill of it turning up later is still adopted as ours: see _resolve_unknown)
                with ctx.store.txn() as db:
                    ctx.store.update_order(db, o["client_order_id"], status="abandoned",
                                           reason="not at the exchange within exchange.orders.recovery_lookback_s")
                ctx.alert("warning", "order_abandoned", f"order {o['client_order_id']} was never listed by the "
                          "exchange within the recovery window; abandoned", self.last_t)

    def send(self, ctx: BrokerContext, o: OrderTicket) -> None:
        """Send one recorded order (its row is in the state file already)."""
        self._send_one(ctx, o)

    def send_list(self, ctx: BrokerContext, list_id: str, stop: OrderTicket, take: OrderTicket) -> None:
        """Send one recorded OCO order list (its legs' rows are in the state file already)."""
        req = OcoRequest(list_id, stop.symbol, float(stop.qty), take.client_order_id, float(take.limit_price),
                         stop.client_order_id, float(stop.stop_price), float(stop.limit_price))
        try:
            legs = self.adapter.create_oco(req)
        except ExchangeCallError as e:  # fate unknown: reconcile() settles it by client order ids
            with ctx.store.txn() as db:
                for o in (stop, take):
                    ctx.store.update_order(db, o.client_order_id, status="sent", reason=str(e)[:300])
            ctx.alert("warning", "order_unknown", f"order list {list_id}: {e}", stop.t)
            return
        with ctx.store.txn() as db:
            for st in legs:
                self._update(ctx, db, st.client_order_id, st)
        if legs and legs[0].status == "rejected":
            ctx.alert("warning", "order_rejected", f"order list {list_id} (take-profit {take.limit_price}, stop "
                      f"{stop.stop_price}) of {stop.symbol}: {legs[0].reject_reason}", stop.t)

    def _send_one(self, ctx: BrokerContext, o: OrderTicket) -> None:
        cid = o.client_order_id
        price = None
        if o.type == "limit":
            inc = self.adapter.markets()[o.symbol].price_increment
            price = limit_for_exchange(float(o.limit_price), inc, o.side)
        elif o.type in PROTECTIVE:
            price = float(o.limit_price)  # on the grid already (engine/live/protect_orders.py)
        try:
            st = self.adapter.create_order(OrderRequest(cid, o.symbol, o.side, o.type, float(o.qty), price,
                                                        stop_price=o.stop_price))
        except ExchangeCallError as e:  # fate unknown: reconcile() settles it by client order id
            with ctx.store.txn() as db:
                ctx.store.update_order(db, cid, status="sent", reason=str(e)[:300])
            ctx.alert("warning", "order_unknown", f"order {cid}: {e}", o.t)
            return
        with ctx.store.txn() as db:
            self._update(ctx, db, cid, st)
        if st.status == "rejected":
            ctx.alert("warning", "order_rejected", f"order {cid} {o.side} {o.qty} {o.symbol}: {st.reject_reason}", o.t)

    def _update(self, ctx: BrokerContext, db, cid: str, st) -> None:
        ctx.store.update_order(db, cid, status=_STATUS.get(st.status, "sent"), exchange_order_id=st.exchange_order_id,
                               avg_price=st.average_price, reason=st.reject_reason)

    def sync_fills(self, ctx: BrokerContext) -> int:
        """Adopt every exchange fill not yet in the state file (by trade id: never twice)."""
        store = ctx.store
        # never synced yet: from the account's creation (a fill made before a crash and a late restart counts)
        created = (store.get("meta", "session") or {}).get("created_wall_ms", now_ms())
        since = int(store.get("state", "fills_since", created - 60_000))
        fills = self.adapter.fills(since)
        have = {r["fill_id"] for r in store.rows("SELECT fill_id FROM fills")}
        new = [f for f in fills if f.trade_id not in have and f.symbol in ctx.index]
        if not new:
            return 0
        by_eid = self._ours(ctx)
        if any(f.exchange_order_id not in by_eid for f in new):
            self._resolve_unknown(ctx, abandoned=True)  # a create whose answer was lost: learn its exchange id first
            by_eid = self._ours(ctx)
        with store.txn() as db:
            for f in new:
                o = by_eid.get(f.exchange_order_id)
                if o is None:
                    store.alert(db, "error", "foreign_fill", f"fill {f.trade_id} of order {f.exchange_order_id} "
                                "is not one of ours; adopted so positions match the exchange", self.last_t)
                cid, t, rule = (o["client_order_id"], int(o["t"]), fill_rule(o, f.price)) if o else \
                    (None, self.last_t or 0, "foreign")
                # the bar it fills in: its decision's next one, as in the backtest
                record_fill(ctx, db, BrokerFill(f.trade_id, cid, f.exchange_order_id, t + 1, f.symbol, f.side, f.qty,
                                                f.price, f.fee, 0.0, f.time_ms, rule or ""))
                if cid:
                    db.execute("UPDATE orders SET filled = filled + ?, fee = fee + ? WHERE client_order_id=?",
                               (f.qty, f.fee, cid))
            store.put("state", "fills_since", max(since, max(f.time_ms for f in new) - 60_000), db)
            ctx.save(db)
        return len(new)

    @staticmethod
    def _ours(ctx: BrokerContext) -> dict:
        return {r["exchange_order_id"]: r for r in ctx.store.rows(
            "SELECT client_order_id, exchange_order_id, t, rule, type, limit_price FROM orders "
            "WHERE exchange_order_id IS NOT NULL")}

    def _resolve_unknown(self, ctx: BrokerContext, abandoned: bool = False) -> None:
        """Learn the exchange id of orders whose create answer was lost (``abandoned``: also of orders
        abandoned as never seen, when a fill of an unknown order turned up)."""
        statuses = "'sent','new','open'" + (",'abandoned'" if abandoned else "")
        for o in ctx.store.rows(f"SELECT * FROM orders WHERE exchange_order_id IS NULL AND status IN ({statuses})"):
            st = self.adapter.fetch_order_by_client_id(o["client_order_id"], o["symbol"], _recorded_ms(o))
            if st is not None:
                with ctx.store.txn() as db:
                    self._update(ctx, db, o["client_order_id"], st)


def _unknown_for_ms(o: dict) -> int:
    """How long an order has been in its current status (since it was marked, e.g. 'sent')."""
    since = o.get("updated_wall_ms") or o.get("created_wall_ms")
    return 0 if since is None else now_ms() - int(since)


def _recorded_ms(o: dict) -> int | None:
    """The earliest an order can exist at the exchange: when we recorded it (a minute of clock skew)."""
    return None if o.get("created_wall_ms") is None else int(o["created_wall_ms"]) - 60_000
