"""What mode=validate checks beyond the config itself: the inputs a run would read.

- every rule file, with every error at once (``load_ruleset(..., gather=True)``), not the first
  one a run stops at;
- the market data a backtest reads (``data``: the source loads, and ``backtest.start`` /
  ``backtest.end`` leave at least two bars of it).

The environment variables a target mode needs are declarative sanity checks
(sanity_checks.yaml, ``needs_env``), and the product table is checked with the config
(check.py). Each finding is one ConfigProblem, like every other check.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from . import paths
from .problems import ConfigProblem

DATA_MODES = ("backtest", "validate")  # the modes that read `data` (the live-clock ones read the exchange)


def _blocked(already: list[str], *keys: str) -> bool:
    return any(paths.overlaps(k, a) for k in keys for a in already)


def rule_file_problems(cfg: dict, root: Path, already: list[str]) -> list[ConfigProblem]:
    from engine.modes.setup import rule_sources
    from engine.rules.errors import RuleError, RuleErrors
    from engine.rules.loader import load_ruleset

    files, params = rule_sources(cfg)
    groups = [g for g in files if g != "regime"]
    # a missing file or an unknown param is already reported (rule_params): not twice
    if _blocked(already, "rules_dir", "regime", *(f"{g}.file" for g in groups)):
        return []
    from engine.paths import rule_folders

    base = rule_folders(str(cfg.get("rules_dir") or "rules"), root)  # the project's files, then the built-ins
    try:
        load_ruleset(base, files, params, cfg.get("book") or None, gather=True)
    except RuleErrors as e:
        errors = e.errors
    except RuleError as e:
        errors = [e]
    else:
        return []
    out = []
    for e in errors:
        if e.message.startswith("config sets params.") and _blocked(already, *(f"{g}.params" for g in groups)):
            continue
        src = e.source.splitlines()[e.line - 1].strip() if e.source and e.line else ""
        where = e.where.label() + (f", line {e.line} col {e.col}" if e.line is not None else "")
        out.append(ConfigProblem("rule_file", where, src or (e.where.key or "this entry"),
                                 e.expected or "a rule as docs/rules.md describes", e.message))
    return out


def data_problems(cfg: dict, already: list[str]) -> list[ConfigProblem]:
    """Load the market a backtest would read and place its window in it."""
    from engine.errors import user_error_types
    from engine.modes.setup import window

    if _blocked(already, "data", "backtest.start", "backtest.end", "product_facts"):
        return []
    source = paths.get(cfg, "data.source", None)
    try:
        market = _market_frame(cfg)
    except user_error_types() as e:
        return [ConfigProblem("data.unreadable", "data", f"data={source}", "market data a backtest can read",
                              str(e).splitlines()[0])]
    try:
        window(market, cfg.get("backtest") or {})
    except user_error_types() as e:
        return [ConfigProblem("data.window", "backtest.start", f"{paths.get(cfg, 'backtest.start', None)} .. "
                              f"{paths.get(cfg, 'backtest.end', None)}",
                              f"a window inside the data ({market.source}: {market.n_bars} bars)", str(e))]
    return []


def _market_frame(cfg: dict):
    """The market as the run will read it: whole, or (``backtest.chunked``) the store's frame
    from its month plan, without holding its prices (engine/modes/month_chunks.py)."""
    from engine.modes.month_chunks import month_source, use_chunks
    from engine.modes.setup import market_for

    return month_source(cfg).frame if use_chunks(cfg) else market_for(cfg)


def check(cfg: dict, target: str, root: Path, already: list[str]) -> list[ConfigProblem]:
    """Every problem of the inputs a run of ``target`` reads (``already``: paths with problems)."""
    problems = rule_file_problems(cfg, root, already)
    if target in DATA_MODES:
        problems += data_problems(cfg, already + [p.path for p in problems])
    return problems
