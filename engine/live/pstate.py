"""The portfolio and halt state of a session as JSON (saved in the same transaction as the
step that changed them), and the one function every broker uses to apply a fill."""
from __future__ import annotations

import numpy as np

from engine.cycle.decide import HaltState
from engine.cycle.locks import LockState
from engine.cycle.portfolio import Portfolio


def dump(pf: Portfolio, halts: HaltState) -> dict:
    return {
        "cash": pf.cash, "qty": pf.qty.tolist(), "entry_price": [None if x != x else x for x in pf.entry_price.tolist()],
        "entry_bar": pf.entry_bar.tolist(), "entry_rule": list(pf.entry_rule), "exiting": pf.exiting.tolist(),
        "peak_equity": pf.peak_equity, "day_start_equity": pf.day_start_equity, "day": pf.day,
        "prev_equity": pf.prev_equity, "equity": pf.equity, "halts": dict(halts.until),
        "locks": halts.locks.to_dict() if halts.locks is not None else None,
    }


def load(d: dict) -> tuple[Portfolio, HaltState]:
    pf = Portfolio(
        cash=float(d["cash"]), qty=np.array(d["qty"], dtype=np.float64),
        entry_price=np.array([np.nan if x is None else x for x in d["entry_price"]], dtype=np.float64),
        entry_bar=np.array(d["entry_bar"], dtype=np.int64), entry_rule=list(d["entry_rule"]),
        exiting=np.array(d["exiting"], dtype=bool), peak_equity=float(d["peak_equity"]),
        day_start_equity=float(d["day_start_equity"]), day=int(d["day"]), prev_equity=float(d["prev_equity"]),
        equity=float(d["equity"]))
    locks = LockState.from_dict(d["locks"]) if d.get("locks") else None
    return pf, HaltState({k: int(v) for k, v in d["halts"].items()}, locks)


def apply_fill(pf: Portfolio, i: int, side: str, qty: float, price: float, fee: float, t: int, rule: str,
               size_increment: float) -> None:
    """The backtest broker's bookkeeping for one fill (average entry price, entry bar, flat);
    ``t`` is the bar the fill belongs to (its decision bar + 1, as in the backtest)."""
    notional = qty * price
    if side == "buy":
        prev = pf.qty[i]
        new = prev + qty
        prev_cost = prev * pf.entry_price[i] if prev > 0 else 0.0
        pf.entry_price[i] = (prev_cost + notional) / new
        if prev <= 0:
            pf.entry_bar[i] = t
            pf.entry_rule[i] = rule
        pf.qty[i] = new
        pf.cash -= notional + fee
    else:
        pf.qty[i] -= qty
        pf.cash += notional - fee
        if pf.qty[i] <= size_increment * 1e-6:
            pf.qty[i] = 0.0
            pf.exiting[i] = False
            pf.entry_price[i] = np.nan
            pf.entry_bar[i] = -1
            pf.entry_rule[i] = ""
