"""Read a sweep's command-line overrides the way Hydra's grid sweeper will expand them.

Used before any job starts: to know how many jobs a grid sweep holds (for progress) and which
distinct ``data`` settings it will need (to build the sample market once, up front).
Sweeps that cannot be enumerated (Optuna's ``interval(...)``, ``tag(...)`` tricks) give None.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class SweepAxis:
    key: str  # the override's key as typed, e.g. "strategy.params.fast" or "risk"
    values: tuple[str, ...]  # each value as an override string would carry it


@dataclass(frozen=True)
class SweepPlan:
    fixed: tuple[str, ...]  # overrides that are the same in every job
    axes: tuple[SweepAxis, ...]  # one per sweep override, in command-line order
    enumerable: bool  # False when some sweep (e.g. interval) has no finite list of values

    @property
    def n_jobs(self) -> int | None:
        if not self.enumerable:
            return None
        return math.prod(len(a.values) for a in self.axes) if self.axes else 1

    def combos(self, keys_prefix: Sequence[str] = ()) -> list[list[str]]:
        """Override lists for every distinct combination of the axes whose key starts with one of
        ``keys_prefix`` (all axes when empty); other axes are left out, fixed overrides kept."""
        # an axis with no finite list of values (interval) cannot be enumerated: left out
        axes = [a for a in self.axes if a.values and (not keys_prefix or _matches(a.key, keys_prefix))]
        choices = [[f"{a.key}={v}" for v in a.values] for a in axes]
        return [list(self.fixed) + list(c) for c in itertools.product(*choices)]


def _matches(key: str, prefixes: Sequence[str]) -> bool:
    bare = key.lstrip("+~")
    return any(bare == p or bare.startswith(p + ".") or bare.startswith(p + "/") for p in prefixes)


def sweep_plan(overrides: Sequence[str]) -> SweepPlan:
    """Split ``overrides`` into fixed ones and sweep axes (Hydra's own override parser)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    fixed: list[str] = []
    axes: list[SweepAxis] = []
    enumerable = True
    for o in parsed:
        if not o.is_sweep_override():
            fixed.append(o.input_line)
            continue
        key = o.get_key_element()
        try:
            values = tuple(o.sweep_string_iterator())
        except Exception:  # interval sweeps and the like have no finite list of values
            enumerable = False
            values = ()
        axes.append(SweepAxis(key, values))
    return SweepPlan(tuple(fixed), tuple(axes), enumerable)
