"""Factories for rule-language tests: rule directories, namespaces, compiled expressions."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping

from engine.paths import project_path
from engine.rules.errors import RuleError, Where
from engine.rules.expr import BOOL, Expr, Namespace, compile_expression
from engine.rules.loader import RuleSet, load_ruleset
from engine.rules.names import KIND_NAMES, types

SHIPPED_RULES = project_path("rules")
SHIPPED_STRATEGIES = tuple(sorted(p.relative_to(SHIPPED_RULES).as_posix()
                                  for p in (SHIPPED_RULES / "strategies").glob("*.yaml")))
REGIMES = ("high_vol", "bull", "bear", "chop")


def shipped_files(strategy: str = "strategies/sma_cross.yaml") -> dict[str, str]:
    """kind -> file, as the default config names them."""
    return {"regime": "regime.yaml", "universe": "universe.yaml", "strategy": strategy,
            "risk": "risk.yaml", "execution": "execution.yaml"}


def create_rules_dir(tmp_path: Path, replace: Mapping[str, str] | None = None) -> Path:
    """A copy of the shipped rules with some files' text replaced (``{"universe.yaml": "..."}``)."""
    root = tmp_path / "rules"
    shutil.copytree(SHIPPED_RULES, root)
    for rel, text in (replace or {}).items():
        (root / rel).write_text(text)
    return root


def edit_rule_file(tmp_path: Path, rel: str, old: str, new: str) -> Path:
    """A copy of the shipped rules where ``old`` is replaced by ``new`` in one file (must occur)."""
    text = (SHIPPED_RULES / rel).read_text()
    assert old in text, f"{old!r} not in {rel}"
    return create_rules_dir(tmp_path, {rel: text.replace(old, new, 1)})


def load_shipped(rules_dir: Path | None = None, strategy: str = "strategies/sma_cross.yaml",
                 params: Mapping[str, Mapping[str, Any]] | None = None) -> RuleSet:
    return load_ruleset(rules_dir or SHIPPED_RULES, shipped_files(strategy), params)


def load_error(rules_dir: Path, strategy: str = "strategies/sma_cross.yaml",
               params: Mapping[str, Mapping[str, Any]] | None = None) -> RuleError:
    """The RuleError that loading ``rules_dir`` raises (fails the test if it loads)."""
    try:
        load_ruleset(rules_dir, shipped_files(strategy), params)
    except RuleError as exc:
        return exc
    raise AssertionError(f"rules in {rules_dir} loaded without error")


def create_namespace(kind: str = "strategy", params: Mapping[str, Any] | None = None,
                     regimes: tuple[str, ...] = REGIMES) -> Namespace:
    series, cycle = KIND_NAMES[kind]
    return Namespace(series=types(series), cycle=types(cycle), params=dict(params or {}), regimes=regimes)


def compile_rule(src: Any, kind: str = "strategy", params: Mapping[str, Any] | None = None,
                 want: str | None = BOOL) -> Expr:
    return compile_expression(src, create_namespace(kind, params), Where("rules/test.yaml", "r1", "when"), want=want)


def compile_error(src: Any, kind: str = "strategy", params: Mapping[str, Any] | None = None,
                  want: str | None = BOOL) -> RuleError:
    try:
        compile_rule(src, kind, params, want)
    except RuleError as exc:
        return exc
    raise AssertionError(f"{src!r} compiled without error")
