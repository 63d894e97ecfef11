"""Registry of renamed and removed config keys, and the pre-pass that migrates them.

Cerberus' own `rename` runs silently and before validation, so deprecations are handled here,
explicitly: a renamed key warns and moves (an error in live mode), old and new together is an
error, a removed key is an error naming what replaced it. Add entries at the end; never delete
one while a release that accepted the old key is still supported.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from . import paths
from .problems import ConfigProblem
from .secrets import REDACTED, is_secret_path

# Modes in which a renamed key is migrated with a warning; anywhere else (live) it is an error,
# because a live config must say exactly what it means. shadow replays a dry_run: as lenient.
LENIENT_MODES = frozenset({"backtest", "dry_run", "paper", "shadow", "validate", "explain"})


@dataclass(frozen=True)
class Renamed:
    old: str
    new: str
    since: str
    note: str = ""


@dataclass(frozen=True)
class Removed:
    old: str
    replacement: str
    since: str
    note: str = ""


RENAMED: tuple[Renamed, ...] = (
    Renamed("backtest.cash", "backtest.initial_cash", "0.1.0", "names the starting balance, in quote currency"),
    Renamed("data.cache", "data.cache_dir", "0.1.0", "it is a folder, not a switch"),
    Renamed("risk.params.max_exposure", "risk.params.max_total_exposure", "0.1.0",
            "the total of all position weights, as a fraction of equity"),
    Renamed("risk.params.max_weight", "risk.params.max_position_weight", "0.1.0", "the cap of one position"),
    Renamed("execution.params.max_spread", "execution.params.max_spread_bps", "0.1.0", "the unit is now in the name"),
    Renamed("execution.params.max_slippage", "execution.params.max_slippage_bps", "0.1.0",
            "the unit is now in the name"),
    Renamed("universe.params.top_n", "universe.params.top", "0.1.0", "matches rank.top in rules/universe.yaml"),
)

REMOVED: tuple[Removed, ...] = (
    Removed("backtest.commission", "exchange.fees.tiers", "0.1.0",
            "fees are the exchange's volume tiers, the same in backtest and live"),
    Removed("backtest.fee_bps", "exchange.fees.tiers", "0.1.0",
            "fees are the exchange's volume tiers, the same in backtest and live"),
    Removed("execution.params.order_type", "execution.yaml (order.type)", "0.1.0",
            "the order type is part of the execution rule file"),
    Removed("risk.burn_in", "live.burn_in (cycles, days, cap_scale, max_order_notional, require_paper, "
            "min_paper_cycles)", "0.1.0", "the burn-in is what the live loop enforces, set in conf/live/"),
)

DEPRECATED_PATHS = frozenset(r.old for r in RENAMED) | frozenset(r.old for r in REMOVED)


def _show(path: str, value: Any) -> str:
    return REDACTED if is_secret_path(path) else paths.show(value)


def migrate(cfg: dict, mode: str) -> tuple[dict, list[ConfigProblem], list[ConfigProblem]]:
    """Return (migrated copy of cfg, problems, warnings). Never mutates cfg."""
    out = copy.deepcopy(cfg)
    problems: list[ConfigProblem] = []
    warnings: list[ConfigProblem] = []
    for r in RENAMED:
        old_value = paths.get(out, r.old)
        if old_value is paths.MISSING:
            continue
        paths.pop(out, r.old)
        why = f" ({r.note})" if r.note else ""
        if paths.has(out, r.new):
            problems.append(ConfigProblem(
                code="deprecated.conflict", path=r.old,
                found=f"both {r.old}={_show(r.old, old_value)} and {r.new}={_show(r.new, paths.get(out, r.new))}",
                expected=f"only {r.new}",
                message=f"'{r.old}' was renamed to '{r.new}' in {r.since}; both are set: remove '{r.old}'",
            ))
            continue
        paths.put(out, r.new, old_value)  # a new key under a non-section: the schema pass reports that parent
        if mode in LENIENT_MODES:
            warnings.append(ConfigProblem(
                code="deprecated.renamed", path=r.old, found=f"{r.old}={_show(r.old, old_value)}", expected=r.new,
                message=f"'{r.old}' is deprecated since {r.since}, use '{r.new}'{why}; migrated for this run",
            ))
        else:
            problems.append(ConfigProblem(
                code="deprecated.renamed_in_live", path=r.old, found=f"{r.old}={_show(r.old, old_value)}",
                expected=r.new,
                message=f"'{r.old}' was renamed to '{r.new}' in {r.since}{why}; mode={mode} accepts only current keys",
            ))
    for r in REMOVED:
        old_value = paths.get(out, r.old)
        if old_value is paths.MISSING:
            continue
        paths.pop(out, r.old)
        why = f" ({r.note})" if r.note else ""
        problems.append(ConfigProblem(
            code="deprecated.removed", path=r.old, found=f"{r.old}={_show(r.old, old_value)}",
            expected=f"no {r.old}; use {r.replacement}",
            message=f"'{r.old}' was removed in {r.since}: replaced by {r.replacement}{why}",
        ))
    return out, problems, warnings
