"""A strategy's ``protect:`` block in live mode: stops resting on the exchange where its profile
takes them (``exchange.protection_orders``), the rest enforced by the loop at each cycle.

Levels are the backtest's (engine/sim/protect.py ``Levels``): fixed at entry from the entry's
fill price (or an expression read at its decision bar); the trailing high takes in each
completed bar's high from the entry bar on. Then, per held symbol:

- on the exchange (a stop-limit sell of the whole position at the binding stop, its limit
  ``exchange.stop_limit_offset_bps`` under it): recorded in the state file (client order id,
  status ``new``) before it is sent; replaced (cancel, then a new recorded order) when the
  trailing level rises by a price increment or the position's size changes; cancelled when the
  position closes by other means (an exit rule's sell cancels it first: a resting spot sell holds
  the base). A stop level the bid has already passed is sold at market instead (the exchange
  refuses a stop that would trigger at once);
- by the loop (what the venue lacks; take_profit and time_stop always, spot sells holding their
  base once): at each cycle, the bars completed since the last check are compared with the levels
  (a low at or under the stop, a high over the take-profit, a position held ``time_stop`` bars at
  the next bar's open) and a market sell is recorded and sent, its rule ``protect:<kind>``.
"""
from __future__ import annotations

import numpy as np

from engine.exchange.ids import make_client_order_id
from engine.exchange.profiles import stop_order_type
from engine.live.brokers import protector_for
from engine.live.port import BrokerContext, OrderTicket
from engine.live.store import now_ms

STOP = "stop_limit"


def describe(protect, config) -> tuple[str, str]:
    """(alert level, message): what protects a live position, said at start (docs/live.md). A
    warning when the loop enforces any: it checks only completed bars, at each cycle, and only
    while it runs (nothing rests on the exchange for it)."""
    kinds = [k for k in ("stop_loss", "take_profit", "trailing_stop", "time_stop") if getattr(protect, k) is not None]
    on_exchange = [k for k in kinds if k in ("stop_loss", "trailing_stop")] if stop_order_type(config) else []
    loop = [k for k in kinds if k not in on_exchange]
    parts = []
    if on_exchange:
        parts.append(f"{', '.join(on_exchange)} placed on the exchange as {stop_order_type(config)} orders")
    if loop:
        parts.append(f"{', '.join(loop)} enforced by the loop at each cycle on exchange {config.name} "
                     f"(protection_orders: [{', '.join(config.protection_orders)}]): checked at each bar's "
                     f"close and sold at market, only while the loop runs")
    return ("warning" if loop else "info"), "; ".join(parts)


def open_stops(ctx: BrokerContext) -> list[dict]:
    return [o for o in ctx.store.open_orders() if o["type"] == STOP]


class ExchangeProtections:
    """The protections of an ExchangeBroker's positions (the broker sends and cancels)."""

    def __init__(self, broker):
        self.broker = broker

    @property
    def kind(self) -> str | None:
        """The order type stops rest on the exchange as (None: the loop enforces them)."""
        return stop_order_type(self.broker.adapter.config)

    @property
    def offset(self) -> float:
        return self.broker.adapter.config.stop_limit_offset_bps / 1e4

    # -- once per cycle (settle) and after a submit's fills ------------------------------------
    def step(self, ctx: BrokerContext, market, t: int) -> None:
        protector = protector_for(ctx, market)
        stops: dict[str, list[dict]] = {}
        for o in open_stops(ctx):
            stops.setdefault(o["symbol"], []).append(o)
        pf = ctx.book.pf
        if protector is None:  # no protect: block (any more): nothing may rest
            for rows in stops.values():
                for o in rows:
                    self.broker.cancel(ctx, o["client_order_id"])
            return
        lv = ctx.book.levels
        held = pf.qty > 0
        gone = np.flatnonzero(~held & ~np.isnan(lv.high))
        lv.clear(gone)
        new = np.flatnonzero(held & np.isnan(lv.high))
        for eb in np.unique(pf.entry_bar[new]):  # levels fixed at entry, as in a backtest
            protector.on_entry(int(eb), new[pf.entry_bar[new] == eb], pf)
        t0 = ctx.book.protect_t + 1 if ctx.book.protect_t >= 0 else t
        idx = np.flatnonzero(held)
        sells: dict[int, str] = {}
        if idx.size and t0 <= t:
            rows = np.arange(t0, t + 1)[:, None]
            since = rows >= pf.entry_bar[idx][None, :]  # bars from the entry bar on
            lo = np.fmin.reduce(np.where(since, market.low[t0:t + 1, idx], np.nan), axis=0)
            hi = np.fmax.reduce(np.where(since, market.high[t0:t + 1, idx], np.nan), axis=0)
            sells = self._loop_checks(ctx, protector, idx, lo, hi, t)
            lv.high[idx] = np.fmax(lv.high[idx], hi)  # after the bars, never within them
        ctx.book.protect_t = t
        for j, rule in sells.items():
            self._sell(ctx, j, rule, t, stops.pop(ctx.symbols[j], []))
        for sym, rows in stops.items():  # closed by other means: the stop goes
            if pf.qty[ctx.index[sym]] <= 0:
                for o in rows:
                    self.broker.cancel(ctx, o["client_order_id"])
        if self.kind is not None:
            for j in idx:
                if j not in sells and not pf.exiting[j]:
                    self._keep_stop(ctx, j, t, stops.get(ctx.symbols[j], []))
        with ctx.store.txn() as db:
            ctx.save(db)
        if sells:
            self.broker.sync_fills(ctx)

    def _loop_checks(self, ctx, protector, idx, lo, hi, t) -> dict[int, str]:
        """The protections the loop enforces that the bars since the last check triggered."""
        lv, r = ctx.book.levels, protector.rules
        out: dict[int, str] = {}
        stop, trailing = lv.stop_level(idx)
        take = lv.take[idx]
        checks = []
        if self.kind is None:
            checks.append((lo <= stop, np.where(trailing, "protect:trailing_stop", "protect:stop_loss")))
        checks.append((hi > take, np.full(idx.size, "protect:take_profit")))
        if r.time_stop is not None:
            checks.append((t + 1 - ctx.book.pf.entry_bar[idx] >= r.time_stop, np.full(idx.size, "protect:time_stop")))
        for hit, rule in checks:  # the first that fires names the sell (a stop before a take-profit)
            for k in np.flatnonzero(hit):
                out.setdefault(int(idx[k]), str(rule[k]))
        return out

    # -- the stop on the exchange --------------------------------------------------------------
    def _keep_stop(self, ctx: BrokerContext, j: int, t: int, rows: list[dict]) -> None:
        sym = ctx.symbols[j]
        lv = ctx.book.levels
        level, trailing = lv.stop_level(np.array([j]))
        level, rule = float(level[0]), "protect:trailing_stop" if trailing[0] else "protect:stop_loss"
        inc = self.broker.adapter.markets()[sym].price_increment or 0.0
        rows = sorted(rows, key=lambda o: o["created_wall_ms"] or 0)
        for o in rows[:-1]:  # never two: the newest stays (a replacement cut short by a crash)
            self.broker.cancel(ctx, o["client_order_id"])
        cur = rows[-1] if rows else None
        if not np.isfinite(level):
            if cur is not None:
                self.broker.cancel(ctx, cur["client_order_id"])
            return
        stop = _down(level, inc)
        qty = float(ctx.book.pf.qty[j])
        if cur is not None:
            if cur["status"] == "new":
                return  # recorded, not sent yet: reconcile sends it
            moved = stop > float(cur["stop_price"] or 0.0) + 0.5 * inc
            if not moved and abs(float(cur["qty"]) - qty) <= 1e-12:
                return
            self.broker.cancel(ctx, cur["client_order_id"])
            if ctx.store.rows("SELECT status FROM orders WHERE client_order_id=?",
                              (cur["client_order_id"],))[0]["status"] != "canceled":
                return  # it filled (or the cancel failed): the next cycle knows
        q = ctx.quotes()
        bid = float(q.bid[j]) if q is not None and np.isfinite(q.bid[j]) else np.inf
        if bid <= stop:  # the bid is through it already: the exchange would refuse the stop
            self._sell(ctx, j, rule, t, [])
            self.broker.sync_fills(ctx)
            return
        limit = _down(stop - stop * self.offset, inc)
        self.place(ctx, OrderTicket(self._cid(ctx, sym, t), t, sym, "sell", qty, STOP, limit, rule, stop))

    def place(self, ctx: BrokerContext, o: OrderTicket) -> None:
        """Record the stop (status new) in its own transaction, then send it."""
        with ctx.store.txn() as db:
            db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, limit_price, stop_price, rule, "
                       "status, created_wall_ms, updated_wall_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       (o.client_order_id, o.t, o.symbol, o.side, o.qty, o.type, o.limit_price, o.stop_price, o.rule,
                        "new", now_ms(), now_ms()))
        self.broker.send(ctx, o)

    def _sell(self, ctx: BrokerContext, j: int, rule: str, t: int, stops: list[dict]) -> None:
        """A market sell of the position (the loop's own protection), its stops cancelled first."""
        for o in stops:
            self.broker.cancel(ctx, o["client_order_id"])
        sym = ctx.symbols[j]
        o = OrderTicket(make_client_order_id(_run_id(ctx), ctx.bar_ms(t), sym, "sell", 1), t, sym, "sell",
                        float(ctx.book.pf.qty[j]), "market", None, rule)
        with ctx.store.txn() as db:
            if db.execute("SELECT 1 FROM orders WHERE client_order_id=?", (o.client_order_id,)).fetchone():
                return  # sent once already for this bar
            db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, rule, status, created_wall_ms, "
                       "updated_wall_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (o.client_order_id, t, sym, "sell", o.qty, "market", rule, "new", now_ms(), now_ms()))
        ctx.alert("info", "protection", f"{rule} of {sym}: sold at market by the loop", t)
        self.broker.send(ctx, o)

    @staticmethod
    def _cid(ctx: BrokerContext, sym: str, t: int) -> str:
        n = ctx.store.db.execute("SELECT COUNT(*) FROM orders WHERE symbol=? AND type=?", (sym, STOP)).fetchone()[0]
        return make_client_order_id(_run_id(ctx), ctx.bar_ms(t), sym, "sell", 2 + n)

    # -- after a restart -----------------------------------------------------------------------
    def bid_through(self, o: dict) -> bool:
        """Whether a recorded stop's trigger is at or above the symbol's bid now (no bid: not known, so no)."""
        q = self.broker.adapter.best_bid_ask([o["symbol"]]).get(o["symbol"])
        return q is not None and np.isfinite(q.bid) and q.bid <= float(o["stop_price"])

    def adopt(self, ctx: BrokerContext) -> int:
        """Stops of ours resting on the exchange that the state file does not hold: recorded as
        they are (never placed a second time)."""
        if self.kind is None:
            return 0
        known = {r["client_order_id"] for r in ctx.store.rows("SELECT client_order_id FROM orders")}
        n = 0
        for st in self.broker.adapter.open_orders():
            if st.type != STOP or st.symbol not in ctx.index or st.client_order_id in known \
                    or not st.client_order_id.startswith("rb-"):
                continue
            with ctx.store.txn() as db:
                db.execute("INSERT INTO orders(client_order_id, t, symbol, side, qty, type, limit_price, stop_price, "
                           "rule, status, exchange_order_id, created_wall_ms, updated_wall_ms) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (st.client_order_id, self.broker.last_t or 0, st.symbol, st.side, st.qty, STOP,
                            st.limit_price, st.stop_price, "protect:stop_loss", "open", st.exchange_order_id,
                            now_ms(), now_ms()))
            ctx.alert("warning", "stop_adopted", f"stop {st.client_order_id} of {st.symbol} rests on the exchange "
                      "but was not in the state file; adopted", None)
            n += 1
        return n


def _down(price: float, inc: float) -> float:
    from engine.live.exchange_broker import limit_for_exchange
    return limit_for_exchange(price, inc, "buy")  # on the grid, rounded down


def _run_id(ctx: BrokerContext) -> str:
    return (ctx.store.get("meta", "session") or {})["run_id"]
