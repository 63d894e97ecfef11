"""check_config: the one pipeline every mode runs before anything else.

compose (Hydra, by the caller) -> missing values (???) -> literal secrets -> deprecated keys
(warn and migrate; an error in live) -> Cerberus schema -> cross-field sanity checks.
All problems are collected, none stops the others; the function never raises on bad input.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pathlib import Path

from engine.paths import project_root

from . import data_span, deprecations, overrides as cli_overrides, paths, rule_params, run_inputs, sanity, schema, symbol_keys
from .problems import ConfigProblem, ConfigReport
from .secrets import find_secret_values, scrub, secret_values, _walk


# Modes whose own requirements are checked; validate/explain check their mode.target's, if any.
RUN_MODES = frozenset(schema.RUN_MODES)


def effective_mode(cfg: Any, mode: str) -> str:
    """The mode whose requirements apply: `mode`, or mode.target for validate/explain."""
    if mode in ("validate", "explain"):
        target = paths.get(cfg, "mode.target", None) if isinstance(cfg, dict) else None
        if isinstance(target, str) and target in RUN_MODES:
            return target
    return mode


def _missing_values(cfg: Any) -> list[ConfigProblem]:
    # OmegaConf.to_container(resolve=True) keeps Hydra's mandatory marker "???" as a string.
    return [
        ConfigProblem("missing_value", path, "??? (no value given)", "a value",
                      f"'{path}' is mandatory and has no value: set it on the command line, e.g. {path}=...")
        for path, _, v in _walk(cfg, "") if isinstance(v, str) and v == "???"
    ]


def _product_table(cfg: dict) -> list[ConfigProblem]:
    """The product table every mode reads at start: validate reports it as the run would."""
    from engine.errors import UserError
    from engine.market.products import load_for, table_path

    try:
        load_for(cfg)
    except UserError as exc:
        return [ConfigProblem("product_facts", "product_facts", str(table_path(cfg)), "a readable product table "
                              "(rules/products.yaml), or product_facts=null for none",
                              str(exc).removeprefix("product_facts: "))]
    return []


def _scrubbed(p: ConfigProblem, secrets: list[str]) -> ConfigProblem:
    if not secrets:
        return p
    return ConfigProblem(p.code, scrub(p.path, secrets), scrub(p.found, secrets), scrub(p.expected, secrets),
                         scrub(p.message, secrets), tuple(scrub(s, secrets) for s in p.suggestions))


def _check(cfg: Any, mode: str, env: Mapping[str, str], live_requirements: bool,
           symbol_themes: Mapping[str, str] | None, rules_root: Path, overrides: Sequence[str],
           inputs: bool = False) -> ConfigReport:
    if not isinstance(cfg, dict):
        return ConfigReport(config={}, mode=mode, problems=schema.validate(cfg))
    problems: list[ConfigProblem] = []
    if mode not in schema.MODES:
        problems.append(ConfigProblem("allowed", "mode.name", repr(mode), "one of: " + ", ".join(schema.MODES),
                                      f"unknown mode {mode!r}"))
    target = effective_mode(cfg, mode)
    problems += _missing_values(cfg)
    problems += cli_overrides.check_overrides(cfg, overrides)
    problems += find_secret_values(cfg)
    migrated, dep_problems, warnings = deprecations.migrate(cfg, target)
    migrated = symbol_keys.restore(migrated)  # BTC-USDC (command-line spelling) -> BTC/USDC
    problems += dep_problems
    already = [p.path for p in problems]
    problems += sorted(
        (p for p in schema.validate(migrated) if not any(paths.overlaps(p.path, a) for a in already)),
        key=lambda p: (p.path, p.code),
    )
    already = [p.path for p in problems]
    problems += [p for p in rule_params.check_rule_params(migrated, rules_root, already)
                 if not any(paths.overlaps(p.path, a) for a in already)]
    if not any(paths.overlaps("product_facts", a) or paths.overlaps("rules_dir", a) for a in already):
        problems += _product_table(migrated)
    errors, sanity_warnings = sanity.run_checks(
        migrated, mode=target, env=env, known_bad=[p.path for p in problems],
        symbol_themes=symbol_themes, use_env=live_requirements, root=rules_root,
    )
    problems += errors
    # last: a sanity check says more (a reversed window) than "the window holds no bars"
    problems += data_span.check_data_span(migrated, target, [p.path for p in problems])
    warnings += sanity_warnings
    if inputs:
        problems += run_inputs.check(migrated, target, rules_root, [p.path for p in problems])
    secrets = secret_values(cfg, env)
    return ConfigReport(config=migrated, mode=mode if target == mode else f"{mode} (as {target})",
                        problems=[_scrubbed(p, secrets) for p in problems],
                        warnings=[_scrubbed(w, secrets) for w in warnings])


def check_config(cfg: dict, *, mode: str, env: Mapping[str, str], live_requirements: bool = True,
                 symbol_themes: Mapping[str, str] | None = None, rules_root: str | Path | None = None,
                 overrides: Sequence[str] = (), inputs: bool = False) -> ConfigReport:
    """Check a composed config (a plain dict, Hydra's `hydra` key removed) for `mode`.

    env: the process environment (os.environ); only read, and only for the variables the config
    names. live_requirements=False skips the checks that read the machine (credentials set, the dry_run
    state file a shadow run replays), e.g. to validate a live config on a machine without them. symbol_themes (symbol -> theme, from
    the market data) makes the per-asset vs theme cap check exact; without it an asset cap is only
    compared with the largest theme cap. rules_root: where a relative rules_dir is found (default:
    the project root, where run.py lives); params overrides are checked against each rule file's
    params. overrides: the command line's Hydra overrides (those that would silently do nothing are
    refused: engine/config/overrides.py). inputs: also read what a run would read (every rule file,
    every error at once; a backtest's market data and window): engine/config/run_inputs.py,
    mode=validate. Never raises on bad input.
    """
    root = Path(rules_root) if rules_root is not None else project_root()
    try:
        return _check(cfg, mode, env, live_requirements, symbol_themes, root, overrides, inputs)
    except Exception as exc:  # a bug here must still give the caller a clean, refusing report
        return ConfigReport(config={}, mode=str(mode), problems=[ConfigProblem(
            "internal_error", "", type(exc).__name__, "a clean check",
            f"the config checker failed ({type(exc).__name__}); please report this with the config",
        )])


_seen_warnings: set[tuple[str, str]] = set()


def emit_warnings(report: ConfigReport, logger: logging.Logger) -> int:
    """Log each warning once per process (a sweep checks many configs); returns how many were logged."""
    from engine import run_warnings

    n = 0
    for w in report.warnings:
        # every run's results name its warnings, even one a sweep logged for an earlier job
        run_warnings.note(w.code, w.format().split("] ", 1)[-1])
        key = (w.code, w.path)
        if key in _seen_warnings:
            continue
        _seen_warnings.add(key)
        logger.warning(w.format())
        n += 1
    return n
