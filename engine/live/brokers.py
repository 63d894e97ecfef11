"""The two brokers that place nothing at an exchange: simulated (paper) and none (dry_run).

Both fill with the backtest's own fill model (engine/sim/fills.py, ``SimBroker``) on the bars
stored in the state file: a decision at bar t fills in bar t+1 — at its open with slippage for
a market order; for a limit order at its limit with the maker fee only if bar t+1 trades
through it, cancelled unfilled at that bar's end — capped by the bar's volume participation,
at the fee tier of the account's trailing volume. A fill is stamped with bar t+1's open time,
never earlier than its decision bar's close.

The difference: paper records every order (client order id first) and settles it through the
orders table, so a restart finds it; dry_run places nothing and keeps its one pending decision
in the account's state (what the shadow replay compares with a backtest).

The exchange broker (live) is engine/live/exchange_broker.py.
"""
from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import numpy as np

from engine.live.port import Balances, BrokerContext, BrokerFill, Note, OrderTicket
from engine.cycle.features import market_series
from engine.rules.expr import FeatureStore
from engine.sim.fills import Fill, ParticipationCuts, SimBroker
from engine.sim.protect import Levels, Protector


def insert_fill(ctx: BrokerContext, db, f: BrokerFill) -> None:
    """Insert one fill row (the portfolio is the caller's business)."""
    db.execute("INSERT INTO fills(fill_id, client_order_id, exchange_order_id, t, symbol, side, qty, price, fee, "
               "slippage, time_ms, rule) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               (f.fill_id, f.client_order_id, f.exchange_order_id, f.t, f.symbol, f.side, f.qty, f.price, f.fee,
                f.slippage, f.time_ms, f.rule))


def stored_fills(ctx: BrokerContext, cursor_ms: int) -> list[BrokerFill]:
    return [BrokerFill(r["fill_id"], r["client_order_id"], r["exchange_order_id"], int(r["t"]), r["symbol"], r["side"],
                       r["qty"], r["price"], r["fee"], r["slippage"], int(r["time_ms"]), r["rule"] or "")
            for r in ctx.store.rows("SELECT * FROM fills WHERE time_ms >= ? ORDER BY time_ms, fill_id", (cursor_ms,))]


def _sim(ctx: BrokerContext, market, row: int, protector: Protector | None) -> SimBroker:
    c = ctx.costs
    if ctx.book.cuts is None:
        ctx.book.cuts = ParticipationCuts()
    # every bar's fill model counts into the account's one counter (saved with the book), so the
    # session's results carry the participation diagnostic a backtest's do
    sim = SimBroker(market, ctx.book.fees, c.slippage, ctx.size_increment, c.max_participation,
                    np.random.default_rng(c.seed + row), cuts=ctx.book.cuts)
    if protector is not None:
        sim.on_entry = protector.on_entry  # levels fixed at entry, as in a backtest
    return sim


def simulate(ctx: BrokerContext, market, row: int, d, protector: Protector | None = None) -> list[Fill]:
    """Fill decision ``d`` in bar ``row`` with the backtest's fill model (updates the book's portfolio
    and the fee tier's window). Seeded per bar, so a replay draws the same slippage noise."""
    return _sim(ctx, market, row, protector).execute(d, row, ctx.book.pf)


def protector_for(ctx: BrokerContext, market) -> Protector | None:
    """The backtest's protections (engine/sim/protect.py) over the stored bars, with the book's
    levels; None when the strategy has no ``protect:`` block."""
    book = ctx.book
    if not book.protect.active:
        return None
    n = market.n_symbols
    if book.levels is None or book.levels.stop.shape[0] != n:
        book.levels = Levels.empty(n)
    store = FeatureStore(market_series(market), (market.n_bars, n))
    return Protector(book.protect, market, store, book.levels)


def protection_rows(ctx: BrokerContext, protector: Protector | None, t: int) -> list[int]:
    """The bars up to t whose protections are not filled yet (none without protections). An account
    that never filled any (a new one, or one whose rules gained a protect: block) starts at t:
    the bars before it are history, not to be traded again."""
    if protector is None:
        return []
    return list(range(ctx.book.protect_t + 1 if ctx.book.protect_t >= 0 else t, t + 1))


def protect_bar(ctx: BrokerContext, market, row: int, protector: Protector) -> None:
    """Fill what bar ``row`` triggers of the protections (after that bar's orders), as the backtest
    does; the fills are written with the book in one transaction."""
    if not (ctx.book.pf.qty > 0).any():
        ctx.book.protect_t = row  # nothing held: nothing to fill (saved with the cycle's state)
        return
    fills = protector.step(_sim(ctx, market, row, protector), row, ctx.book.pf)
    ctx.book.protect_t = row
    if not fills:
        return  # the trailing highs moved: saved with the cycle's state (replaying the bar is harmless)
    with ctx.store.txn() as db:
        for f in fills:
            insert_fill(ctx, db, BrokerFill(f"protect-{row}-{f.symbol_idx}", None, None, row, ctx.symbols[f.symbol_idx],
                                            f.side, f.qty, f.price, f.fee, f.slippage, int(market.times[row]), f.rule))
        ctx.save(db)


def _limits(values) -> np.ndarray | None:
    """A decision's limit prices as stored (None where a market order) -> the fill model's array."""
    if values is None:
        return None
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _stored_limits(limit: np.ndarray | None) -> list | None:
    return None if limit is None else [None if not math.isfinite(x) else float(x) for x in limit.tolist()]


class _LocalBroker:
    """A broker with no account of its own (dry_run, paper): its fills are the ones it wrote into
    the state itself, and its cash starts from live.initial_cash."""

    def fills_since(self, ctx: BrokerContext, cursor_ms: int) -> list[BrokerFill]:
        return stored_fills(ctx, cursor_ms)

    def balances(self, quote_currency: str) -> Balances:
        return Balances(None)  # no account of its own: it starts from live.initial_cash

    def finish(self, ctx: BrokerContext) -> None:
        pass


class NoneBroker(_LocalBroker):
    """dry_run: decisions only. The virtual portfolio fills each decision in its next bar with the
    backtest's fill model, so a backtest over the same bars decides the same (mode=shadow)."""

    places_orders = False

    def reconcile(self, ctx: BrokerContext) -> None:
        pass

    def settle(self, ctx: BrokerContext, market, t: int) -> None:
        pend = ctx.book.pending
        protector = protector_for(ctx, market)
        fill_row = None
        if pend and pend["t"] < t and pend["t"] + 1 < market.n_bars:
            fill_row = pend["t"] + 1
        for row in sorted(set(protection_rows(ctx, protector, t)) | ({fill_row} if fill_row is not None else set())):
            if row == fill_row:
                self._fill(ctx, market, row, pend, protector)
            if protector is not None and row > ctx.book.protect_t:
                protect_bar(ctx, market, row, protector)

    def _fill(self, ctx: BrokerContext, market, row: int, pend: dict, protector: Protector | None) -> None:
        d = SimpleNamespace(sell_qty=np.array(pend["sell"]), buy_qty=np.array(pend["buy"]),
                            exit_rule=pend["exit_rule"], entry_rule=pend["entry_rule"],
                            limit_price=_limits(pend.get("limit")))
        with ctx.store.txn() as db:
            for f in simulate(ctx, market, row, d, protector):
                insert_fill(ctx, db, BrokerFill(f"dry-{row}-{f.symbol_idx}-{f.side}", None, None, row,
                                                ctx.symbols[f.symbol_idx], f.side, f.qty, f.price, f.fee, f.slippage,
                                                int(market.times[row]), f.rule))
            ctx.book.pending = None
            ctx.save(db)

    def available(self, ctx: BrokerContext, d, close: np.ndarray) -> tuple[object, list[Note]]:
        return d, []

    def submit(self, ctx: BrokerContext, t: int, orders: list[OrderTicket], d) -> None:
        if not d.has_orders:
            return
        ctx.book.pending = {"t": t, "sell": d.sell_qty.tolist(), "buy": d.buy_qty.tolist(),
                            "exit_rule": list(d.exit_rule), "entry_rule": list(d.entry_rule),
                            "limit": _stored_limits(d.limit_price)}
        with ctx.store.txn() as db:
            ctx.save(db)

    def cancel(self, ctx: BrokerContext, client_order_id: str) -> None:
        pass

    def cancel_all(self, ctx: BrokerContext) -> int:
        return 0

    def open_orders(self, ctx: BrokerContext) -> list[OrderTicket]:
        return []


class SimulatedBroker(_LocalBroker):
    """paper: every order recorded with its client order id, accepted by the simulator and filled
    (or, a limit not reached, cancelled) in the bar after its decision bar, exactly as in a backtest."""

    places_orders = True

    def reconcile(self, ctx: BrokerContext) -> None:
        """Orders recorded before a restart: fresh ones wait for their fill bar; stale ones, and
        buys while the kill switch is on, are abandoned."""
        for o in ctx.store.open_orders():
            halted = o["side"] == "buy" and ctx.entries_halted()
            if ctx.order_is_fresh(o) and not halted:
                if o["status"] == "new":
                    ctx.alert("warning", "resend", f"paper order {o['client_order_id']} was recorded but not "
                              "submitted before a restart; submitted now (it fills in its decision's next bar)", o["t"])
                    with ctx.store.txn() as db:
                        ctx.store.update_order(db, o["client_order_id"], status="open")
                continue
            with ctx.store.txn() as db:
                ctx.store.update_order(db, o["client_order_id"], status="abandoned",
                                       reason="kill switch on" if halted else "stale after restart")

    def settle(self, ctx: BrokerContext, market, t: int) -> None:
        """Fill the orders of every decision bar before t whose next bar is stored."""
        by_bar: dict[int, list[dict]] = defaultdict(list)
        for o in ctx.store.open_orders():
            if o["status"] == "open" and int(o["t"]) < t and int(o["t"]) + 1 < market.n_bars:
                by_bar[int(o["t"])].append(o)
        protector = protector_for(ctx, market)
        for row in sorted(set(protection_rows(ctx, protector, t)) | {b + 1 for b in by_bar}):
            if row - 1 in by_bar:
                self._fill_bar(ctx, market, row, by_bar[row - 1], protector)
            if protector is not None and row > ctx.book.protect_t:
                protect_bar(ctx, market, row, protector)

    def _fill_bar(self, ctx: BrokerContext, market, row: int, orders: list[dict], protector=None) -> None:
        n = len(ctx.symbols)
        sell, buy, limit = np.zeros(n), np.zeros(n), np.full(n, np.nan)
        exit_rule, entry_rule = [""] * n, [""] * n
        by_key = {}
        for o in orders:
            j = ctx.index[o["symbol"]]
            (buy if o["side"] == "buy" else sell)[j] = float(o["qty"])
            (entry_rule if o["side"] == "buy" else exit_rule)[j] = o["rule"] or ""
            if o["type"] == "limit":
                limit[j] = float(o["limit_price"])
            by_key[(j, o["side"])] = o
        d = SimpleNamespace(sell_qty=sell, buy_qty=buy, exit_rule=exit_rule, entry_rule=entry_rule,
                            limit_price=limit if np.isfinite(limit).any() else None)
        when = int(market.times[row])
        with ctx.store.txn() as db:
            filled = set()
            for f in simulate(ctx, market, row, d, protector):
                o = by_key[(f.symbol_idx, f.side)]
                cid = o["client_order_id"]
                insert_fill(ctx, db, BrokerFill("paper-" + cid, cid, None, row, o["symbol"], f.side, f.qty, f.price,
                                                f.fee, f.slippage, when, f.rule))
                ctx.store.update_order(db, cid, status="filled", filled=f.qty, avg_price=f.price, fee=f.fee,
                                       reason=None if f.qty >= float(o["qty"]) - 1e-12
                                       else "partly filled (volume participation); the rest cancelled at the bar's end")
                filled.add(cid)
            for o in orders:
                if o["client_order_id"] not in filled:  # good for one bar, as in the backtest
                    ctx.store.update_order(db, o["client_order_id"], status="canceled",
                                           reason="not filled in its bar (limit not traded through, no volume, "
                                                  "nothing held or no cash)")
            ctx.save(db)

    def available(self, ctx: BrokerContext, d, close: np.ndarray) -> tuple[object, list[Note]]:
        return d, []  # every earlier order is settled before a decision (its bar is stored by then)

    def submit(self, ctx: BrokerContext, t: int, orders: list[OrderTicket], d) -> None:
        if not orders:
            return
        with ctx.store.txn() as db:
            for o in orders:
                ctx.store.update_order(db, o.client_order_id, status="open")

    def cancel(self, ctx: BrokerContext, client_order_id: str) -> None:
        with ctx.store.txn() as db:
            ctx.store.update_order(db, client_order_id, status="canceled", reason="cancelled")

    def cancel_all(self, ctx: BrokerContext) -> int:
        live = [o for o in ctx.store.open_orders() if o["status"] == "open"]
        for o in live:
            self.cancel(ctx, o["client_order_id"])
        return len(live)

    def open_orders(self, ctx: BrokerContext) -> list[OrderTicket]:
        return [OrderTicket.from_row(o) for o in ctx.store.open_orders()]

