"""The search space of a walk-forward: ``walkforward.grid`` flattened to dotted keys, its points
in a fixed order, and a config with one point applied."""
from __future__ import annotations

import copy
import itertools
from typing import Any, Mapping

from engine.errors import UserError


def search_axes(grid: Mapping[str, Any], name: str, fixed: tuple[str, ...], shared: str) -> dict[str, list]:
    """The grid's axes (``flatten_grid``), refusing an empty grid and a key under ``fixed`` (what
    every point shares, said by ``shared``) with one line naming ``name.<key>``."""
    axes = flatten_grid(grid or {}, name=name)
    if not axes:
        raise UserError(f"{name} is empty; expected at least one key with values to try, "
                        f"e.g. {name}.strategy.params.fast=[12,24]")
    for key in axes:
        if any(key == f or key.startswith(f + ".") for f in fixed):
            raise UserError(f"{name}.{key}: {key} cannot be searched (every point shares {shared}); "
                            f"expected a strategy/universe/risk/execution/backtest setting")
    return axes


def flatten_grid(grid: Mapping[str, Any], prefix: str = "", name: str = "walkforward.grid") -> dict[str, list]:
    """``{"strategy": {"params": {"fast": [6, 12]}}}`` -> ``{"strategy.params.fast": [6, 12]}``."""
    out: dict[str, list] = {}
    for k, v in grid.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten_grid(v, key, name))
        elif isinstance(v, (list, tuple)):
            if not v:
                raise UserError(f"{name}.{key} is an empty list; expected at least one value to try")
            out[key] = list(v)
        else:
            raise UserError(f"{name}.{key} is {v!r}; expected a list of values to try, e.g. [{v!r}]")
    return out


def grid_points(axes: Mapping[str, list]) -> list[dict[str, Any]]:
    """Every combination, the last key varying fastest (the order ties are broken in)."""
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def apply_point(cfg: Mapping[str, Any], point: Mapping[str, Any], name: str = "walkforward.grid") -> dict:
    """A deep copy of ``cfg`` with each dotted key of ``point`` set; the key must exist already
    (a typo in the grid is an error, not a silently ignored setting)."""
    out = copy.deepcopy(dict(cfg))
    for key, value in point.items():
        node: Any = out
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                have = ", ".join(sorted(node)) if isinstance(node, dict) else type(node).__name__
                raise UserError(f"{name}.{key}: the config has no key {'.'.join(parts[:i + 1])!r}; "
                                f"expected an existing config key (there: {have})")
            if i == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return out
