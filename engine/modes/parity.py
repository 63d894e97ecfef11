"""The parity harness: one config, one market, three modes, zero differences.

    python -m engine.modes.parity [--cycles 30] [--out parity.json] [--state-dir DIR] -- OVERRIDES

Runs a dry_run and a paper session against the in-process emulator (``exchange=local_sim``)
in step mode: the emulator's market moves bar by bar as the session asks (``live.clock=step``),
so a session of N cycles takes as long as deciding N times, with no sleeping. Then it replays
each session's stored bars as a backtest (the same rules, the same cost model, the product
table applied to the exchange's facts as a backtest applies it; never the facts the session
recorded, which a bug in live would share) and compares, exactly (``==``, no tolerance):

- product facts: the theme, increments and minimum notional each product was traded with;
- bars: every stored open/high/low/close/volume against the emulator's own bars (the feed);
- cycles and regime: a cycle at every bar of the session, with the backtest's regime label;
- decisions: per bar, symbol and side, the quantity and the deciding rule;
- trace: per bar, every recorded rule event (cycle verdicts, caps' clips, guards' blocks);
- orders (a mode whose broker places orders, i.e. paper): type, limit price and quantity;
- fills: per bar, symbol and side, quantity, price and fee.

Each difference names the mode, the bar (index and open time), the symbol, the side and the
field, with both values. Exit code 1 when there is one, 2 on bad input.

Fills compare exactly only with slippage noise off (``backtest.slippage.noise_bps=0``, the
default): a backtest draws its noise from one stream over the run, a live session from one per
bar. The harness refuses a config with noise on. It lifts the client's rate limits (the
in-process emulator enforces none here), which changes how fast requests go, never what they return.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engine.backtest.engine import run_backtest
from engine.cycle.prepare import prepare
from engine.errors import UserError
from engine.live.shadow import stored_market
from engine.live.store import StateStore
from engine.market import products
from engine.market.data import SymbolInfo, iso_utc
from engine.modes.setup import load_rules
from engine.sim.settings import SimSettings
from engine.trace import cycle_record

MODES = ("dry_run", "paper")  # live places real orders: the emulator stands in for it in its own tests
BAR_FIELDS = ("open", "high", "low", "close", "volume")
PRODUCT_FIELDS = ("theme", "price_increment", "size_increment", "min_notional")
UNLIMITED_PER_S = 1e6


@dataclass(frozen=True)
class Difference:
    mode: str
    what: str  # product | bars | cycle | regime | decision | trace | order | fill
    t: int  # the bar (row of the session's stored panel)
    time: str  # that bar's open time (UTC)
    symbol: str | None
    side: str | None
    field: str
    session: Any  # the session's value (None: it has none)
    backtest: Any

    def __str__(self) -> str:
        where = " ".join(x for x in (self.symbol, self.side) if x)
        return (f"{self.mode} {self.what}{' ' + where if where else ''} at bar {self.t} ({self.time}): {self.field}: "
                f"{self.mode}={self.session!r} backtest={self.backtest!r}")


@dataclass
class SessionParity:
    mode: str
    state_file: str
    cycles: int
    start: str
    end: str
    counts: dict[str, int]  # decisions, orders, fills on the session's side
    differences: list[Difference] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["n_differences"] = len(self.differences)
        return d


@dataclass
class ParityReport:
    sessions: list[SessionParity]

    @property
    def differences(self) -> list[Difference]:
        return [d for s in self.sessions for d in s.differences]

    def to_dict(self) -> dict:
        return {"sessions": [s.to_dict() for s in self.sessions], "n_differences": len(self.differences)}


def session_config(cfg: Mapping[str, Any], mode: str, state_dir: Path, cycles: int) -> dict:
    """``cfg`` as the harness runs it in ``mode``: the emulator in step mode on a fresh account."""
    ex = (cfg.get("exchange") or {})
    if not (ex.get("emulator") or {}).get("autostart"):
        raise UserError(f"exchange {ex.get('name')!r} starts no in-process emulator; the parity harness runs "
                        "against one: exchange=local_sim")
    noise = float(((cfg.get("backtest") or {}).get("slippage") or {}).get("noise_bps") or 0.0)
    if noise:
        raise UserError(f"backtest.slippage.noise_bps is {noise}; the parity harness compares fills exactly, "
                        "which needs it 0 (a backtest draws noise over the run, a live session per bar)")
    c = copy.deepcopy(dict(cfg))
    c["mode"] = {**(c.get("mode") or {}), "name": mode}
    c["live"] = {**(c.get("live") or {}), "clock": "step", "state_dir": str(state_dir), "max_cycles": int(cycles),
                 "end_time": None}
    c["exchange"]["emulator"] = {**c["exchange"]["emulator"], "speed": None, "enforce_rate_limits": False}
    pools = ((c["exchange"].get("rate_limits") or {}).get("pools") or {})
    for pool in pools.values():
        pool["limit_per_s"] = UNLIMITED_PER_S
    return c


def run_session(cfg: Mapping[str, Any], mode: str) -> SessionParity:
    """One bounded session of ``mode`` on the step-mode emulator, then its comparison with the
    backtest of its stored bars."""
    from engine.modes.live import open_session

    s = open_session(cfg, mode)
    try:
        if s.store.get("meta", "session") is not None:
            raise UserError(f"{s.store.path} already holds a {mode} account; the parity harness needs a fresh "
                            "live.state_dir (or none: it then uses a temporary one)")
        s.run()
        return compare(s.store, cfg, mode, s.adapter.emulator.market, s.broker.places_orders)
    finally:
        s.adapter.close()
        s.store.close()


def run(cfg: Mapping[str, Any], cycles: int = 30, state_dir: Path | None = None,
        modes: tuple[str, ...] = MODES) -> ParityReport:
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise UserError(f"parity modes {bad}; expected some of {', '.join(MODES)}")
    with tempfile.TemporaryDirectory(prefix="rulebook-parity-") as tmp:
        where = Path(state_dir) if state_dir is not None else Path(tmp)
        return ParityReport([run_session(session_config(cfg, m, where, cycles), m) for m in modes])


# -- the comparison ---------------------------------------------------------------------------
def replay_market(store: StateStore, cfg: Mapping[str, Any]):
    """The session's stored bars with the product table applied to the exchange's own facts (as
    a backtest applies it), not the facts the session recorded."""
    market = stored_market(store)
    stated = tuple(SymbolInfo(**i) for i in store.get("meta", "session")["info"])
    market.info = products.apply(products.load_for(cfg), stated, stated=True).info
    return market


def compare(store: StateStore, cfg: Mapping[str, Any], mode: str, emulated=None,
            places_orders: bool = True) -> SessionParity:
    """Every difference between a session's state file and the backtest of its bars.
    ``emulated``: the emulator's market (its bars are checked against the stored ones)."""
    cycles = store.rows("SELECT t, regime, trace FROM cycles ORDER BY t")
    if not cycles:
        raise UserError(f"{store.path} holds no cycle: nothing to compare")
    market = replay_market(store, cfg)
    p = prepare(market, load_rules(cfg))
    start, last = int(cycles[0]["t"]), int(cycles[-1]["t"])
    meta = store.get("meta", "session")
    settings = dataclasses.replace(SimSettings.from_run_config(cfg), initial_cash=float(meta["initial_cash"]),
                                   start=start, stop=last + 2)
    decided: list = []
    # every bar through decide (the reference path): each bar's trace is compared, quiet ones too
    res = run_backtest(p, settings, fast=False, observe=decided.append)
    sym = market.symbols
    out = SessionParity(mode, str(store.path), len(cycles), iso_utc(int(market.times[start])),
                        iso_utc(int(market.times[last])), {})
    diffs = out.differences

    def diff(what, t, symbol, side, fld, mine, theirs) -> None:
        diffs.append(Difference(mode, what, int(t), iso_utc(int(market.times[t])), symbol, side, fld, mine, theirs))

    used = store.get("state", "product_facts")
    if used is not None:  # the facts the session decided with, from its first cycle on
        for got, want in zip(used["info"], market.info):
            for f in PRODUCT_FIELDS:
                if got[f] != getattr(want, f):
                    diff("product", start, want.symbol, None, f, got[f], getattr(want, f))
    if emulated is not None:
        _bars(market, emulated, start, last, diff)
    by_t = {int(c["t"]): c for c in cycles}
    back_d = {d.t: d for d in decided}
    for t in range(start, last + 1):
        if t not in by_t:
            diff("cycle", t, None, None, "decided", False, True)
            continue
        want = p.regime_labels[p.regime_idx[t]]
        if by_t[t]["regime"] != want:
            diff("regime", t, None, None, "regime", by_t[t]["regime"], want)
        _trace(t, _json(by_t[t]["trace"]), cycle_record(back_d[t]) if t in back_d else None, sym, diff)

    # decisions: (t, symbol, side) -> (qty, rule)
    mine = {(int(r["t"]), r["symbol"], r["side"]): {"qty": r["qty"], "rule": r["rule"] or ""}
            for r in store.rows("SELECT t, symbol, side, qty, rule FROM decisions")}
    theirs, orders = {}, {}
    for d in decided:
        for side, qty, rules in (("sell", d.sell_qty, d.exit_rule), ("buy", d.buy_qty, d.entry_rule)):
            for i in np.flatnonzero(qty > 0):
                key = (d.t, sym[i], side)
                theirs[key] = {"qty": float(qty[i]), "rule": rules[i] or ""}
                px = None if d.limit_price is None or not np.isfinite(d.limit_price[i]) else float(d.limit_price[i])
                orders[key] = {"type": "market" if px is None else "limit", "limit_price": px, "qty": float(qty[i])}
    _keyed("decision", mine, theirs, ("qty", "rule"), diff)
    n_orders = 0
    if places_orders:
        got = {(int(r["t"]), r["symbol"], r["side"]): {"type": r["type"], "limit_price": r["limit_price"], "qty": r["qty"]}
               for r in store.rows("SELECT t, symbol, side, type, limit_price, qty FROM orders")}
        n_orders = len(got)
        _keyed("order", got, orders, ("type", "limit_price", "qty"), diff)
    fills = {(int(r["t"]), r["symbol"], r["side"]): {"qty": r["qty"], "price": r["price"], "fee": r["fee"]}
             for r in store.rows("SELECT t, symbol, side, qty, price, fee FROM fills")}
    back_f = {(f.t, sym[f.symbol_idx], f.side): {"qty": float(f.qty), "price": float(f.price), "fee": float(f.fee)}
              for f in res.fills}
    _keyed("fill", fills, back_f, ("qty", "price", "fee"), diff)
    out.counts = {"decisions": len(mine), "orders": n_orders, "fills": len(fills), "backtest_fills": len(back_f)}
    diffs.sort(key=lambda d: (d.t, d.what, d.symbol or "", d.side or "", d.field))
    return out


def _json(text: str | None) -> dict:
    return json.loads(text) if text else {}


def _keyed(what: str, mine: dict, theirs: dict, fields: tuple[str, ...], diff) -> None:
    """Rows keyed by (t, symbol, side): one present on one side only is a difference in ``present``."""
    for key in sorted(set(mine) | set(theirs)):
        t, symbol, side = key
        a, b = mine.get(key), theirs.get(key)
        if a is None or b is None:
            diff(what, t, symbol, side, "present", a is not None, b is not None)
            continue
        for f in fields:
            if a[f] != b[f]:
                diff(what, t, symbol, side, f, a[f], b[f])


def _trace(t: int, mine: dict, theirs: dict | None, sym, diff) -> None:
    """The recorded rule events of one bar: per event key, the symbols on one side only."""
    def flat(rec: dict | None) -> dict[str, set]:
        out: dict[str, set] = {}
        for key, val in (rec or {}).items():
            if isinstance(val, dict):  # a group: rule or cap id -> symbol indices
                for rid, idx in val.items():
                    out[f"{key}:{rid}"] = set(idx)
            elif key != "halts":
                out[key] = set(val)
            else:
                out["halts"] = set(val)
        return out

    a, b = flat(mine), flat(theirs)
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key, set()), b.get(key, set())
        if key == "halts":
            if x != y:
                diff("trace", t, None, None, "halts", sorted(x), sorted(y))
            continue
        for i in sorted(x ^ y):
            diff("trace", t, sym[i], None, key, i in x, i in y)


def _bars(market, emulated, start: int, last: int, diff) -> None:
    """Stored bars against the emulator's: the feed delivered exactly what the exchange served."""
    cols = [emulated.columns[s.replace("/", "-")] for s in market.symbols]
    idx = np.searchsorted(emulated.times_ms, market.times[:last + 1])
    ok = (idx < len(emulated.times_ms)) & (emulated.times_ms[np.minimum(idx, len(emulated.times_ms) - 1)] == market.times[:last + 1])
    for name in BAR_FIELDS:
        got = getattr(market, name)[:last + 1]
        want = np.where(ok[:, None], getattr(emulated, name)[np.minimum(idx, len(emulated.times_ms) - 1)][:, cols], np.nan)
        bad = ~((got == want) | (np.isnan(got) & np.isnan(want)))
        for t, j in zip(*np.nonzero(bad)):
            diff("bars", int(t), market.symbols[j], None, name, float(got[t, j]), float(want[t, j]))


# -- the command ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from engine.errors import user_error_types
    from engine.modes.baseline import compose, split_overrides
    from engine.report.jsonio import write_json

    argv, given = split_overrides(argv)
    overrides: list[str] = given or []
    ap = argparse.ArgumentParser(prog="python -m engine.modes.parity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=30, help="cycles per session")
    ap.add_argument("--out", default=None, help="write the report as JSON here")
    ap.add_argument("--state-dir", default=None, help="keep the sessions' state files here (a fresh folder)")
    args = ap.parse_args(argv)
    if args.cycles < 2:
        print(f"error: --cycles is {args.cycles}; expected >= 2", file=sys.stderr)
        return 2
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from engine.config.entry import run_check

    try:
        cfg = compose(["exchange=local_sim", *overrides])
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    for mode in MODES:  # the checks a run of each mode makes before it starts
        checked = run_check(cfg, mode=mode)
        if not checked.ok:
            print(f"error: the config is not valid for mode={mode}:\n{checked.format()}", file=sys.stderr)
            return 2
    try:
        report = run(cfg, args.cycles, None if args.state_dir is None else Path(args.state_dir))
    except user_error_types() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for d in report.differences[:50]:
        print(d)
    for s in report.sessions:
        print(f"parity {s.mode}: {s.cycles} cycles {s.start} .. {s.end}, {s.counts['decisions']} decisions, "
              f"{s.counts['orders']} orders, {s.counts['fills']} fills; {len(s.differences)} difference(s)")
        if not s.counts["decisions"] and not s.counts["backtest_fills"]:
            print(f"WARNING parity {s.mode}: nothing was decided in {s.cycles} cycles, so zero differences prove "
                  "little: use rules that trade on the emulator's 1m bars (e.g. strategy.params.fast=2 "
                  "strategy.params.slow=5 universe.params.min_history_bars=10 live.history_bars=60)")
    if args.out:
        write_json(args.out, report.to_dict())
    return 1 if report.differences else 0


if __name__ == "__main__":
    sys.exit(main())
