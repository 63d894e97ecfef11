"""Runs the declarative cross-field checks of sanity_checks.yaml over a (schema-valid) config."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


from engine import yamlfast

from engine.market.data import TIMEFRAME_MS

from . import paths
from .predicate import Predicate, Skip, compile_predicate
from .problems import ConfigProblem
from .schema import MODES

CHECKS_FILE = Path(__file__).with_name("sanity_checks.yaml")
FUNCTIONS = frozenset({"is_set", "value_or", "file_exists", "env_set", "timeframe_s", "theme_cap", "table_themes",
                       "is_ascending", "pluck", "len", "min", "max", "abs", "supported_exchanges",
                       "memory_need_gib", "memory_budget_gib"})
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_SPEC_KEYS = {"id", "modes", "for_each", "when", "require", "severity", "needs_env", "path", "found",
              "expected", "message"}
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


class SanityCheckFileError(ValueError):
    """sanity_checks.yaml itself is malformed (a bug to fix in the file, named with the check id)."""


@dataclass(frozen=True)
class Template:
    """Text with {expression} placeholders."""
    parts: tuple  # str | Predicate, alternating

    def render(self, scope) -> str:
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            try:
                out.append(_fmt(p(scope)))
            except Skip:
                out.append("?")
        return "".join(out)


@dataclass(frozen=True)
class SanityCheck:
    id: str
    require: Predicate
    path: Template
    found: Template
    expected: Template
    message: Template
    when: Predicate | None = None
    for_each: str | None = None
    modes: frozenset[str] | None = None
    severity: str = "error"
    needs_env: bool = False
    refs: tuple[str, ...] = ()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return format(round(v, 10), "g")
    if v is None or v is paths.MISSING:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _template(text: Any, where: str) -> Template:
    if not isinstance(text, str):
        raise SanityCheckFileError(f"{CHECKS_FILE.name}: {where} must be a string, found {text!r}")
    parts: list = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        parts.append(text[pos:m.start()])
        parts.append(compile_predicate(m.group(1), FUNCTIONS))
        pos = m.end()
    parts.append(text[pos:])
    return Template(tuple(p for p in parts if p != ""))


def _spec(raw: Any, index: int) -> SanityCheck:
    if not isinstance(raw, dict) or "id" not in raw:
        raise SanityCheckFileError(f"{CHECKS_FILE.name}: entry {index} must be a mapping with an id")
    cid = raw["id"]
    unknown = set(raw) - _SPEC_KEYS
    if unknown:
        raise SanityCheckFileError(f"{CHECKS_FILE.name}: check {cid}: unknown key(s) {sorted(unknown)}")
    for k in ("require", "path", "found", "expected", "message"):
        if k not in raw:
            raise SanityCheckFileError(f"{CHECKS_FILE.name}: check {cid}: '{k}' is required")
    severity = raw.get("severity", "error")
    if severity not in ("error", "warning"):
        raise SanityCheckFileError(f"{CHECKS_FILE.name}: check {cid}: severity must be error or warning")
    try:
        require = compile_predicate(str(raw["require"]), FUNCTIONS)
        when = compile_predicate(str(raw["when"]), FUNCTIONS) if "when" in raw else None
        templates = {k: _template(raw[k], f"check {cid}: {k}") for k in ("path", "found", "expected", "message")}
    except ValueError as exc:
        raise SanityCheckFileError(f"{CHECKS_FILE.name}: check {cid}: {exc}") from None
    modes = raw.get("modes")
    if modes is not None and (not isinstance(modes, list) or not set(modes) <= set(MODES)):
        raise SanityCheckFileError(f"{CHECKS_FILE.name}: check {cid}: modes must be a list of {', '.join(MODES)}; "
                                   f"found {modes!r}")
    for_each = raw.get("for_each")
    refs = list(require.refs) + (list(when.refs) if when else []) + ([for_each] if for_each else [])
    return SanityCheck(
        id=cid, require=require, when=when, for_each=for_each,
        modes=frozenset(raw["modes"]) if raw.get("modes") else None, severity=severity,
        needs_env=bool(raw.get("needs_env", False)), refs=tuple(dict.fromkeys(refs)), **templates,
    )


@lru_cache(maxsize=4)
def load_checks(path: Path = CHECKS_FILE) -> tuple[SanityCheck, ...]:
    raw = yamlfast.safe_load(path.read_text())
    if not isinstance(raw, list):
        raise SanityCheckFileError(f"{path.name}: must be a list of checks")
    checks = tuple(_spec(r, i) for i, r in enumerate(raw))
    ids = [c.id for c in checks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise SanityCheckFileError(f"{path.name}: duplicate check id(s) {dupes}")
    return checks


def _is_set(x: Any) -> bool:
    return x is not paths.MISSING and x is not None and x != ""


def _value_or(x: Any, default: Any) -> Any:
    v = default if x is paths.MISSING or x is None else x
    if v is paths.MISSING:
        raise Skip("missing")
    return v


def _file_exists(root: Path):
    def file_exists(p) -> bool:
        if not isinstance(p, str) or not p:
            raise Skip("not a path")
        # As engine.paths.project_path resolves live.state_dir: relative to the project root.
        path = Path(p).expanduser()
        return (path if path.is_absolute() else root / path).is_file()
    return file_exists


def _is_ascending(xs) -> bool:
    return all(a < b for a, b in zip(xs, xs[1:]))


def _table(cfg: dict):
    """The run's product table (rules/products.yaml): the one source of themes every mode reads;
    None when it does not load (check.py reports why)."""
    from engine.errors import UserError
    from engine.market.products import load_for
    try:
        return load_for(cfg)
    except (UserError, TypeError, ValueError):
        return None


def _table_theme(cfg: dict):
    facts = _table(cfg)
    return facts.theme_of if facts is not None else (lambda symbol: None)


def _table_themes(cfg: dict):
    def table_themes() -> list[str]:
        from engine.market.products import UNDECLARED
        facts = _table(cfg)
        if facts is None or not (facts.themes or facts.markets):
            raise Skip("no product table")  # every product is theme 'other': nothing to compare with
        named = set(facts.themes.values()) | {m["theme"] for m in facts.markets.values() if "theme" in m}
        return sorted(named | {UNDECLARED})
    return table_themes


def _functions(cfg: dict, env: Mapping[str, str], symbol_themes: Mapping[str, str] | None, root: Path) -> dict:
    table_theme = None

    def theme_cap(symbol):
        nonlocal table_theme
        caps = paths.get(cfg, "risk.params.theme_caps")
        total = paths.get(cfg, "risk.params.max_total_exposure")
        if not isinstance(caps, dict) or not caps:
            return _strict_num(total)
        if symbol_themes is not None:
            theme = symbol_themes.get(symbol)
        else:
            table_theme = table_theme or _table_theme(cfg)
            theme = table_theme(symbol) if isinstance(symbol, str) else None
        if theme is None:
            return max(caps.values())  # unknown theme: only flag a cap above every theme's cap
        if theme in caps:
            return caps[theme]
        return caps.get("default", _strict_num(total))

    def env_set(name):
        return isinstance(name, str) and bool(env.get(name))

    return {
        "is_set": _is_set, "value_or": _value_or, "file_exists": _file_exists(root), "env_set": env_set, "theme_cap": theme_cap, "is_ascending": _is_ascending,
        "timeframe_s": lambda tf: TIMEFRAME_MS[tf] / 1000, "pluck": lambda xs, k: [x[k] for x in xs],
        "len": len, "min": min, "max": max, "abs": abs,
        "supported_exchanges": _supported_exchanges, "table_themes": _table_themes(cfg),
        "memory_need_gib": _memory_need_gib, "memory_budget_gib": _memory_budget_gib,
    }


def _memory_need_gib(n_bars, n_symbols) -> float:
    from engine.market.memory import GIB, estimate_bytes
    return round(estimate_bytes(int(n_bars), int(n_symbols)) / GIB, 1)


def _memory_budget_gib(max_gib) -> float:
    """``data.max_memory_gib``, else what the machine has free now (infinite when unknown)."""
    from engine.market.memory import GIB, available_bytes
    if max_gib is not None:
        return float(max_gib)
    free = available_bytes()
    return float("inf") if free is None else round(free / GIB, 1)


def _supported_exchanges() -> list[str]:
    from engine.exchange.profiles import supported_ids  # no ccxt import: validate stays fast
    return supported_ids()


def _strict_num(v):
    if v is paths.MISSING:
        raise Skip("missing")
    return v


def run_checks(cfg: dict, *, mode: str, env: Mapping[str, str], known_bad: list[str],
               symbol_themes: Mapping[str, str] | None = None, use_env: bool = True,
               checks: tuple[SanityCheck, ...] | None = None,
               root: Path = PROJECT_ROOT) -> tuple[list[ConfigProblem], list[ConfigProblem]]:
    """Return (errors, warnings). known_bad: paths with schema problems; checks reading them are skipped.
    use_env=False skips the needs_env checks (environment variables, files such as state files);
    root: where relative paths of file_exists() are found (the project root)."""
    funcs = _functions(cfg, env, symbol_themes, root)
    errors: list[ConfigProblem] = []
    warnings: list[ConfigProblem] = []
    for check in checks if checks is not None else load_checks():
        if check.modes is not None and mode not in check.modes:
            continue
        if check.needs_env and not use_env:
            continue
        if any(paths.overlaps(ref, bad) for ref in check.refs for bad in known_bad):
            continue
        if check.for_each:
            coll = paths.get(cfg, check.for_each)
            if isinstance(coll, dict):
                entries = list(coll.items())
            elif isinstance(coll, list):
                entries = list(enumerate(coll))
            else:
                continue
        else:
            entries = [(None, None)]
        for key, value in entries:
            scope = {"cfg": cfg, "funcs": funcs, "vars": {} if check.for_each is None else {"key": key, "value": value}}
            try:
                if check.when is not None and not check.when(scope):
                    continue
                if check.require(scope):
                    continue
            except Skip:
                continue
            problem = ConfigProblem(
                code=f"sanity.{check.id}", path=check.path.render(scope), found=check.found.render(scope),
                expected=check.expected.render(scope), message=check.message.render(scope),
            )
            (errors if check.severity == "error" else warnings).append(problem)
    return errors, warnings
