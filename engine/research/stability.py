"""How steady the parameters a walk-forward chose are from fold to fold (docs/metrics.md)."""
from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Mapping, Sequence


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def parameter_stability(chosen: Sequence[Mapping[str, Any]], grid: Mapping[str, Sequence[Any]]) -> dict[str, dict]:
    """Per searched parameter, over the folds' chosen values (in fold order):

    - ``modal`` / ``modal_share``: the most chosen value (ties: the earliest in the grid) and the
      share of folds that chose it (1.0 = every fold chose the same);
    - ``changes``: share of consecutive fold pairs whose value differs (0 = never moved);
    - ``dispersion``: population std of the chosen values' positions in the grid divided by
      (grid size - 1): 0 = always the same, 0.5 = half the folds at each end of the grid.
    """
    out: dict[str, dict] = {}
    n = len(chosen)
    for name, values in grid.items():
        order = [_key(v) for v in values]
        picks = [_key(c[name]) for c in chosen]
        if n == 0:
            out[name] = {"values": [], "modal": None, "modal_share": None, "changes": None, "dispersion": None}
            continue
        counts = Counter(picks)
        top = max(counts.values())
        modal = next(k for k in order if counts.get(k) == top) if any(k in counts for k in order) else picks[0]
        pos = [order.index(p) for p in picks if p in order]
        dispersion = None
        if len(values) > 1 and pos:
            mean = sum(pos) / len(pos)
            dispersion = math.sqrt(sum((p - mean) ** 2 for p in pos) / len(pos)) / (len(values) - 1)
        out[name] = {
            "values": [c[name] for c in chosen],
            "modal": json.loads(modal),
            "modal_share": top / n,
            "changes": (sum(a != b for a, b in zip(picks, picks[1:])) / (n - 1)) if n > 1 else 0.0,
            "dispersion": dispersion,
        }
    return out
