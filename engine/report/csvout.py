"""Plain CSV beside the report, for spreadsheets: trades.csv, fills.csv, equity.csv."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from engine.report.jsonio import atomic_write_text
from engine.report.metrics import drawdown
from engine.report.timeutil import iso_to_ms

TRADE_COLUMNS = ("symbol", "theme", "entry_time", "exit_time", "entry_price", "exit_price", "qty", "pnl", "return",
                 "fees", "holding_hours", "entry_rule", "exit_rule")
FILL_COLUMNS = ("time", "symbol", "side", "qty", "price", "notional", "fee", "slippage", "rule")
EQUITY_COLUMNS = ("time", "equity", "benchmark_equity", "exposure", "drawdown", "regime")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_cell(v) for v in row])
    return buf.getvalue()


def trades_csv(round_trips: Sequence[Mapping]) -> str:
    ordered = sorted(round_trips, key=lambda rt: (rt.get("entry_time") or "", rt.get("symbol") or ""))
    return csv_text(TRADE_COLUMNS, ([rt.get(c) for c in TRADE_COLUMNS] for rt in ordered))


def fills_csv(fills: Sequence[Mapping]) -> str:
    return csv_text(FILL_COLUMNS, ([f.get(c) for c in FILL_COLUMNS] for f in fills))


def equity_csv(results: Mapping[str, Any]) -> str:
    """One row per equity bar; benchmark and exposure joined on time, regime from the intervals."""
    rows = results["equity"]
    times = [r[0] for r in rows]
    eq = np.array([r[1] for r in rows], dtype=np.float64)
    initial = (results.get("metrics") or {}).get("initial_equity")
    dd = drawdown(eq, float(initial) if initial else None)
    bench = {t: v for t, v in results.get("benchmark_equity") or []}
    expo = {t: v for t, v in results.get("exposure") or []}
    regime = [""] * len(times)
    regimes = results.get("regimes") or []
    if regimes and times:
        t_ms = iso_to_ms(times, where="results.equity")
        starts = iso_to_ms((r[0] for r in regimes), where="results.regimes")
        ends = iso_to_ms((r[1] for r in regimes), where="results.regimes")
        k = np.searchsorted(starts, t_ms, side="right") - 1
        inside = (k >= 0) & (t_ms <= ends[np.clip(k, 0, None)])
        regime = [str(regimes[j][2]) if ok else "" for j, ok in zip(k.tolist(), inside.tolist())]
    return csv_text(EQUITY_COLUMNS, ((t, float(v), bench.get(t), expo.get(t), float(d), g)
                                     for t, v, d, g in zip(times, eq.tolist(), dd.tolist(), regime)))


def write_csvs(run_dir: Path, results: Mapping[str, Any]) -> dict[str, Path]:
    run_dir = Path(run_dir)
    return {
        "trades_csv": atomic_write_text(run_dir / "trades.csv", trades_csv(results.get("round_trips") or [])),
        "fills_csv": atomic_write_text(run_dir / "fills.csv", fills_csv(results.get("trades") or [])),
        "equity_csv": atomic_write_text(run_dir / "equity.csv", equity_csv(results)),
    }
