"""A heatmap of one metric over two swept parameters: the sweep report's grid view.

Plain data for the template (a table with a background colour per cell), no script: rows are
the second parameter's values, columns the first's, both in natural order. A cell holds the
run with that pair of values (several runs with the same pair: the best by the metric's
direction; the cell says how many). Colours run from red (worst) through pale grey to green (best)
over the cells' range.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping, Sequence


def _order(v: Any) -> tuple:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", str(v)) if p))


def _colour(share: float) -> str:
    """0 = worst (red) .. 1 = best (green), pale enough for dark text."""
    bad, mid, good = (248, 113, 113), (249, 250, 251), (74, 222, 128)
    a, b, t = (bad, mid, share * 2) if share < 0.5 else (mid, good, share * 2 - 1)  # through a pale middle
    rgb = (round(x + (y - x) * t) for x, y in zip(a, b))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def heatmap(runs: Sequence[Mapping[str, Any]], x_param: str, y_param: str, metric: str,
            higher_is_better: bool | None) -> dict | None:
    """{"x", "y", "x_values", "y_values", "rows": [[cell|None]]} or None when fewer than 2 x 2 values."""
    ok = [r for r in runs if r.get("status") == "ok" and x_param in r["params"] and y_param in r["params"]]
    key = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731
    xs = sorted({key(r["params"][x_param]): r["params"][x_param] for r in ok}.values(), key=_order)
    ys = sorted({key(r["params"][y_param]): r["params"][y_param] for r in ok}.values(), key=_order)
    if len(xs) < 2 or len(ys) < 2:
        return None
    sign = -1.0 if higher_is_better is False else 1.0
    cells: dict[tuple[str, str], dict] = {}
    for r in ok:
        v = r["metrics"].get(metric)
        v = v if isinstance(v, (int, float)) and math.isfinite(v) else None
        k = (key(r["params"][x_param]), key(r["params"][y_param]))
        cur = cells.get(k)
        better = cur is None or (v is not None and (cur["value"] is None or sign * v > sign * cur["value"]))
        n = (cur["n"] if cur else 0) + 1
        if better:
            cells[k] = {"value": v, "run": r["id"], "n": n}
        else:
            cur["n"] = n
    values = [c["value"] for c in cells.values() if c["value"] is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
    for c in cells.values():
        if c["value"] is None or hi == lo:
            c["colour"] = "#f3f4f6"
        else:
            share = (c["value"] - lo) / (hi - lo)
            c["colour"] = _colour(share if higher_is_better is not False else 1.0 - share)
    rows = [[cells.get((key(x), key(y))) for x in xs] for y in ys]
    return {"x": x_param, "y": y_param, "x_values": xs, "y_values": ys, "rows": rows}
