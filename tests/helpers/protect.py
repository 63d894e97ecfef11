"""Factories for protection scenarios: a hand-built candle market, a ``protect:`` block and the
simulated broker, driven in the backtest loop's order (a bar's orders at its open, then its
protections), either bar by bar or across quiet stretches as the fast path does."""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.cycle.features import market_series
from engine.rules.errors import Where
from engine.rules.expr import NUM, FeatureStore, Namespace, compile_expression
from engine.rules.loader import ProtectRules, Protection
from engine.rules.names import MARKET, types
from engine.sim.protect import Protector
from tests.helpers.backtest import candle_market, flat_fees, make_broker, order, portfolio

# the decision bar of the first entry (its fill is the next bar's open)
BAR0 = (100.0, 100.0, 100.0, 100.0, 1000.0)
NAN_BAR = (float("nan"),) * 5


def protect_rules(store: FeatureStore, stop_loss=None, take_profit=None, trailing_stop=None,
                  time_stop=None) -> ProtectRules:
    """A ``protect:`` block: a number is a fraction, a string a market expression (a distance)."""
    ns = Namespace(series=types(MARKET))

    def one(kind, v):
        if v is None:
            return None
        w = Where("test.yaml", "protect", kind)
        if isinstance(v, str):
            expr = compile_expression(v, ns, w, want=NUM)
            expr.series(store)
            return Protection(kind, w, v, distance=expr)
        return Protection(kind, w, str(v), fraction=float(v))

    return ProtectRules(one("stop_loss", stop_loss), one("take_profit", take_profit),
                        one("trailing_stop", trailing_stop), time_stop)


@dataclass
class Outcome:
    fills: list  # engine.sim.fills.Fill
    pf: object  # the portfolio at the end
    protector: Protector

    def rows(self) -> list[tuple]:
        """(bar, side, rule, price, qty, fee) per fill."""
        return [(f.t, f.side, f.rule, f.price, f.qty, f.fee) for f in self.fills]


@dataclass
class Scenario:
    name: str
    bars: list  # candles from bar 1 on (bar 0 is BAR0 unless ``bar0`` is given)
    protect: dict
    expected: list  # (bar, side, rule, price, qty, fee); the entry buy included
    buys: dict = field(default_factory=lambda: {1: 1.0})  # bar -> quantity bought at its open
    broker: dict = field(default_factory=dict)  # make_broker keywords (fees, slippage, participation)
    spread_bps: float = 0.0
    bar0: tuple = BAR0
    size_increment: float = 1e-8


def run_scenario(sc: Scenario, fast: bool = False) -> Outcome:
    market = candle_market([sc.bar0, *sc.bars], spread_bps=sc.spread_bps, size_increment=sc.size_increment)
    store = FeatureStore(market_series(market), (market.n_bars, market.n_symbols))
    broker = make_broker(market, **sc.broker)
    protector = Protector(protect_rules(store, **sc.protect), market, store)
    broker.on_entry = protector.on_entry
    pf = portfolio()
    n = market.n_bars
    t = 1
    while t < n:
        if t in sc.buys:
            broker.execute(order(t=t - 1, buy=sc.buys[t]), t, pf)
        protector.step(broker, t, pf)
        if fast:
            # the fast path: jump to the next bar where a protection may fire (or an order fills)
            nxt = min([b for b in sc.buys if b > t] + [n])
            h = protector.horizon(pf, t + 1, nxt)
            protector.advance(pf, t + 1, h)
            t = h
        else:
            t += 1
    return Outcome(broker.fills, pf, protector)


def locks_of_fills(res) -> list:
    """The scoped locks' ``until`` after a backtest's fills, replayed bar by bar with the function
    the backtest and the live loop apply (a backtest's result does not keep its halt state)."""
    import numpy as np

    from engine.cycle.locks import after_fills
    from engine.cycle.plan import HaltState, cycle_plan

    plan = cycle_plan(res.prepared)
    halts, qty = HaltState(), np.zeros(res.prepared.market.n_symbols)
    for bar in sorted({f.t for f in res.fills}):
        mine = [f for f in res.fills if f.t == bar]
        for f in mine:
            qty[f.symbol_idx] += f.qty if f.side == "buy" else -f.qty
        held = np.where(qty > res.prepared.size_increment * 1e-6, qty, 0.0)
        halts = after_fills(plan.locks, res.prepared.themes, halts, mine, held, bar)
    return halts.locks.until.tolist()


__all__ = ["BAR0", "NAN_BAR", "Outcome", "Scenario", "flat_fees", "locks_of_fills", "protect_rules", "run_scenario"]
