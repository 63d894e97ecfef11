"""The simulated broker: fills a cycle's orders at the next bar's open.

Fill model (docs/backtest.md lists it for users):
- a decision at bar t (after its close) fills at bar t+1's open, never at a price it saw;
- no fill on a missing bar (gap, halt, not yet listed): the order is dropped, and an exit
  stays pending so it is retried next cycle;
- buys pay open x (1 + slippage), sells receive open x (1 - slippage);
- fill quantity is capped at ``max_participation`` x the bar's volume (partial fills);
- the taker fee of the current tier is charged in quote currency on the fill's notional;
- sells fill before buys; buys are scaled down to the cash the account has.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.backtest.costs import FeeSchedule, SlippageModel
from engine.cycle.decide import Decision
from engine.cycle.portfolio import Portfolio
from engine.market.data import MarketData, iso_utc


@dataclass
class Fill:
    t: int
    symbol_idx: int
    side: str
    qty: float
    price: float
    fee: float
    slippage: float  # quote-currency cost versus the open
    rule: str


@dataclass
class SimBroker:
    market: MarketData
    fees: FeeSchedule
    slippage: SlippageModel
    size_increment: np.ndarray
    max_participation: float = 0.1
    rng: np.random.Generator | None = None
    fills: list[Fill] = field(default_factory=list)

    def execute(self, d: Decision, t: int, pf: Portfolio) -> list[Fill]:
        m = self.market
        opened = m.open[t]
        ok = ~np.isnan(opened)
        vol_cap = np.where(np.isnan(m.volume[t]), 0.0, m.volume[t]) * self.max_participation
        bar_usd = np.nan_to_num(m.volume[t] * opened)
        tier = self.fees.tier(int(m.times[t]))
        fee_rate = tier.taker_bps / 1e4
        out: list[Fill] = []

        sell = np.where(ok, np.minimum(d.sell_qty, vol_cap), 0.0)
        sell = _round(sell, self.size_increment, pf.qty)
        if sell.any():
            idx = np.flatnonzero(sell > 0)
            q = sell[idx]
            px = opened[idx]
            slip_bps = self.slippage.bps(m.spread_bps[t, idx], q * px, bar_usd[idx], self.rng)
            fill_px = px * (1.0 - slip_bps / 1e4)
            notional = q * fill_px
            fee = notional * fee_rate
            pf.cash += float(notional.sum() - fee.sum())
            pf.qty[idx] -= q
            flat = idx[pf.qty[idx] <= self.size_increment[idx] * 1e-6]
            pf.qty[flat] = 0.0
            pf.exiting[flat] = False
            for k, i in enumerate(idx):
                out.append(Fill(t, int(i), "sell", float(q[k]), float(fill_px[k]), float(fee[k]),
                                float(q[k] * (px[k] - fill_px[k])), d.exit_rule[i]))
                self.fees.record(int(m.times[t]), float(notional[k]))

        buy = np.where(ok, np.minimum(d.buy_qty, vol_cap), 0.0)
        if buy.any():
            idx = np.flatnonzero(buy > 0)
            q = buy[idx]
            px = opened[idx]
            slip_bps = self.slippage.bps(m.spread_bps[t, idx], q * px, bar_usd[idx], self.rng)
            fill_px = px * (1.0 + slip_bps / 1e4)
            cost = q * fill_px * (1.0 + fee_rate)
            total = float(cost.sum())
            if total > pf.cash:
                scale = max(pf.cash, 0.0) / total
                q = np.floor(q * scale / self.size_increment[idx]) * self.size_increment[idx]
                keep = q > 0
                idx, q, px, fill_px = idx[keep], q[keep], px[keep], fill_px[keep]
            notional = q * fill_px
            fee = notional * fee_rate
            pf.cash -= float(notional.sum() + fee.sum())
            prev = pf.qty[idx]
            new_qty = prev + q
            prev_cost = np.where(prev > 0, prev * np.nan_to_num(pf.entry_price[idx]), 0.0)
            pf.entry_price[idx] = (prev_cost + notional) / new_qty
            pf.entry_bar[idx] = np.where(prev > 0, pf.entry_bar[idx], t)
            pf.qty[idx] = new_qty
            for k, i in enumerate(idx):
                if prev[k] == 0:
                    pf.entry_rule[i] = d.entry_rule[i]
                out.append(Fill(t, int(i), "buy", float(q[k]), float(fill_px[k]), float(fee[k]),
                                float(q[k] * (fill_px[k] - px[k])), d.entry_rule[i]))
                self.fees.record(int(m.times[t]), float(notional[k]))
        self.fills.extend(out)
        return out


def _round(qty: np.ndarray, inc: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Round a sell down to the increment, but sell everything when that is all that is left."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.floor(qty / inc + 1e-9) * inc
    return np.where(qty >= held - inc * 1e-6, np.minimum(qty, held), r)


def fill_to_dict(f: Fill, market: MarketData) -> dict:
    return {
        "symbol": market.symbols[f.symbol_idx],
        "side": f.side,
        "time": iso_utc(int(market.times[f.t])),
        "qty": f.qty,
        "price": f.price,
        "notional": f.qty * f.price,
        "fee": f.fee,
        "slippage": f.slippage,
        "rule": f.rule,
    }
