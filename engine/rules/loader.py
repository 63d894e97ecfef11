"""Load, validate and compile rule files into a :class:`RuleSet`.

A rule file is YAML validated by a Cerberus schema of its kind (engine/rules/schema.py),
then every expression is compiled against the namespace of its kind (engine/rules/names.py).
Params come from the file's ``params`` and are overridden by the Hydra config (a key the
file does not define is an error, so a typo cannot silently do nothing).
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import cerberus
import yaml

from engine.rules.errors import RuleError, Where
from engine.rules.expr import BOOL, NUM, Expr, Namespace, compile_expression
from engine.rules.names import KIND_NAMES, types
from engine.rules.schema import SCHEMAS

KINDS = ("regime", "universe", "strategy", "risk", "execution")


@dataclass
class Rule:
    id: str
    when: Expr
    where: Where
    regimes: tuple[str, ...] | None = None
    why: str = ""
    source: str = ""


@dataclass
class RegimeRules:
    rules: list[Rule]
    default: str
    exclude_themes: tuple[str, ...]
    params: dict

    @property
    def labels(self) -> tuple[str, ...]:
        ids = [r.id for r in self.rules]
        return tuple(ids + ([self.default] if self.default not in ids else []))


@dataclass
class UniverseRules:
    filters: list[Rule]
    rank_by: Expr | None
    descending: bool
    top: int
    ttl_ms: int
    rebuild_on_regime_change: bool
    params: dict


@dataclass
class StrategyRules:
    name: str
    entries: list[Rule]
    exits: list[Rule]
    size: Expr
    priority: Expr | None
    params: dict


@dataclass
class Cap:
    id: str
    type: str
    limit: float | None = None
    limits: dict[str, float] = field(default_factory=dict)
    per_symbol: dict[str, float] = field(default_factory=dict)


@dataclass
class Halt:
    rule: Rule
    action: str
    cooldown_bars: int


@dataclass
class RiskRules:
    caps: list[Cap]
    halts: list[Halt]
    vetoes: list[Rule]
    params: dict


@dataclass
class ExecutionRules:
    guards: list[Rule]
    order_type: str
    params: dict


@dataclass
class RuleSet:
    regime: RegimeRules
    universe: UniverseRules
    strategy: StrategyRules
    risk: RiskRules
    execution: ExecutionRules
    file_hashes: dict[str, str]  # file -> sha256 of its text (recorded with every run)

    def all_rules(self) -> list[tuple[str, Rule]]:
        """(stage, rule) for every expression rule, in pipeline order."""
        out = [("regime", r) for r in self.regime.rules]
        out += [("universe", r) for r in self.universe.filters]
        out += [("entry", r) for r in self.strategy.entries] + [("exit", r) for r in self.strategy.exits]
        out += [("veto", r) for r in self.risk.vetoes] + [("halt", h.rule) for h in self.risk.halts]
        out += [("guard", r) for r in self.execution.guards]
        return out


# -- reading ----------------------------------------------------------------------------------


def _read_yaml(path: Path, label: str) -> tuple[dict, dict[str, int], str]:
    """The mapping in ``path``, the YAML line of each rule id, and the file's text."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RuleError(Where(label), "rule file not found", expected=f"a file at {path}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise RuleError(Where(label + line), f"invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise RuleError(Where(label), f"the file holds {type(data).__name__}", expected="a mapping with 'kind:' at the top")
    lines = {m.group(1): text[: m.start()].count("\n") + 1
             for m in re.finditer(r"^\s*-\s*(?:\{\s*)?id:\s*([A-Za-z_][A-Za-z0-9_]*)", text, re.M)}
    return data, lines, text


def _schema_errors(errors: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(errors, dict):
        for k, v in errors.items():
            path = f"{prefix}.{k}" if prefix and not isinstance(k, int) else (f"{prefix}[{k}]" if isinstance(k, int) else str(k))
            out += _schema_errors(v, path)
    elif isinstance(errors, list):
        for e in errors:
            out += _schema_errors(e, prefix)
    else:
        out.append(f"{prefix}: {errors}")
    return out


def _validate(data: dict, kind: str, label: str) -> None:
    schema = SCHEMAS[kind]
    v = cerberus.Validator(schema, allow_unknown=False)
    if not v.validate(data):
        msgs = _schema_errors(v.errors)
        known = list(schema)
        hints = []
        for m in msgs:
            key = m.split(":")[0].split(".")[-1]
            if "unknown field" in m:
                close = difflib.get_close_matches(re.sub(r"\[\d+\]", "", key), known + ["when", "why", "regimes", "id"], n=1)
                hints.append(m + (f" (did you mean '{close[0]}'?)" if close else ""))
            else:
                hints.append(m)
        raise RuleError(Where(label), "invalid rule file:\n  " + "\n  ".join(hints))


def _merge_params(file_params: dict, overrides: Mapping[str, Any] | None, label: str) -> dict:
    params = copy.deepcopy(file_params or {})
    for k, v in (overrides or {}).items():
        if k not in params:
            close = difflib.get_close_matches(k, list(params), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise RuleError(Where(label), f"config sets params.{k}, which the rule file does not define{hint}",
                            expected="one of " + ", ".join(sorted(params)))
        params[k] = v
    return params


def _resolve(value: Any, params: dict, where: Where, what: str) -> Any:
    """A literal, or ``params.x`` resolved from the params."""
    if isinstance(value, str) and value.startswith("params."):
        name = value[len("params."):]
        if name not in params:
            close = difflib.get_close_matches(name, list(params), n=1)
            hint = f" (did you mean 'params.{close[0]}'?)" if close else ""
            raise RuleError(where, f"{what} refers to unknown {value}{hint}")
        return params[name]
    return value


def _positive_int(value: Any, where: Where, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 1:
        raise RuleError(where, f"{what} is {value!r}", expected="a positive whole number")
    return int(value)


def _fraction(value: Any, where: Where, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise RuleError(where, f"{what} is {value!r}", expected="a fraction between 0 and 1")
    return float(value)


_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


def parse_duration_ms(value: Any, where: Where, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value * 1000
    m = _DURATION.match(str(value))
    if not m or int(m.group(1)) <= 0:
        raise RuleError(where, f"{what} is {value!r}", expected="a duration such as 30m, 24h, 7d, 1w (or seconds)")
    unit = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}[m.group(2)]
    return int(m.group(1)) * unit


# -- compiling --------------------------------------------------------------------------------


class _FileCompiler:
    def __init__(self, label: str, kind: str, params: dict, lines: dict[str, int], regimes: tuple[str, ...]):
        self.label, self.kind, self.params, self.lines, self.regimes = label, kind, params, lines, regimes

    def ns(self, names_key: str) -> Namespace:
        series, cycle = KIND_NAMES[names_key]
        return Namespace(series=types(series), cycle=types(cycle), params=self.params, regimes=self.regimes)

    def where(self, rule_id: str, key: str) -> Where:
        return Where(self.label, rule_id, key, self.lines.get(rule_id))

    def rules(self, items: list[dict], names_key: str, seen: set[str]) -> list[Rule]:
        out = []
        ns = self.ns(names_key)
        for item in items:
            rid = item["id"]
            where = self.where(rid, "when")
            if rid in seen:
                raise RuleError(where, f"rule id '{rid}' is used twice", expected="unique ids within a file")
            seen.add(rid)
            regimes = item.get("regimes")
            if regimes is not None and self.regimes:
                for r in regimes:
                    if r not in self.regimes:
                        close = difflib.get_close_matches(r, self.regimes, n=1)
                        hint = f" (did you mean '{close[0]}'?)" if close else ""
                        raise RuleError(self.where(rid, "regimes"), f"regime '{r}' is not defined by the regime file{hint}",
                                        expected="one of " + ", ".join(self.regimes))
            expr = compile_expression(item["when"], ns, where, want=BOOL)
            why = item.get("why", "")
            self.check_template(why, rid)
            out.append(Rule(rid, expr, where, tuple(regimes) if regimes else None, why, str(item["when"])))
        return out

    def check_template(self, why: str, rid: str) -> None:
        for name in re.findall(r"\{([^}]*)\}", why or ""):
            if name == "value":
                continue
            if not name.startswith("params.") or name[len("params."):] not in self.params:
                raise RuleError(self.where(rid, "why"), f"message template names {{{name}}}",
                                expected="{value} or {params.<name>} of a defined param")

    def expr(self, src: Any, names_key: str, key: str, want: str) -> Expr:
        return compile_expression(src, self.ns(names_key), Where(self.label, "", key), want=want)


def _load_file(rules_dir: Path, rel: str, kind: str, overrides: Mapping[str, Any] | None):
    path = Path(rel) if Path(rel).is_absolute() else rules_dir / rel
    label = f"rules/{rel}" if not Path(rel).is_absolute() else str(path)
    data, lines, text = _read_yaml(path, label)
    if data.get("kind") != kind:
        raise RuleError(Where(label, "", "kind"), f"kind is {data.get('kind')!r}", expected=f"kind: {kind}")
    _validate(data, kind, label)
    params = _merge_params(data.get("params") or {}, overrides, label)
    return data, lines, label, params, hashlib.sha256(text.encode()).hexdigest()


def load_ruleset(
    rules_dir: Path | str,
    files: Mapping[str, str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    bars_per_ms: float | None = None,
) -> RuleSet:
    """Load the five rule files. ``files`` maps kind -> path relative to ``rules_dir``;
    ``params`` maps kind -> overrides of that file's params (from the Hydra config)."""
    rules_dir = Path(rules_dir)
    params = params or {}
    hashes: dict[str, str] = {}
    missing = [k for k in KINDS if k not in files]
    if missing:
        raise RuleError(Where("config"), f"no rule file given for {', '.join(missing)}")

    # regime first: its labels are what the other files may name
    data, lines, label, p, h = _load_file(rules_dir, files["regime"], "regime", params.get("regime"))
    hashes[label] = h
    fc = _FileCompiler(label, "regime", p, lines, ())
    regime_rules = fc.rules(data["regimes"], "regime", set())
    default = data["default"]
    regime = RegimeRules(regime_rules, default, tuple((data.get("index") or {}).get("exclude_themes", [])), p)
    labels = regime.labels

    data, lines, label, p, h = _load_file(rules_dir, files["universe"], "universe", params.get("universe"))
    hashes[label] = h
    fc = _FileCompiler(label, "universe", p, lines, labels)
    filters = fc.rules(data["filters"], "universe", set())
    rank = data.get("rank") or {}
    rank_by = fc.expr(rank["by"], "universe", "rank.by", NUM) if "by" in rank else None
    top = _positive_int(_resolve(rank.get("top", 10**9), p, Where(label, "", "rank.top"), "rank.top"),
                        Where(label, "", "rank.top"), "rank.top")
    cache = data.get("cache") or {}
    ttl = parse_duration_ms(cache.get("ttl", "1h"), Where(label, "", "cache.ttl"), "cache.ttl")
    universe = UniverseRules(filters, rank_by, bool(rank.get("descending", True)), top, ttl,
                             bool(cache.get("rebuild_on_regime_change", True)), p)

    data, lines, label, p, h = _load_file(rules_dir, files["strategy"], "strategy", params.get("strategy"))
    hashes[label] = h
    fc = _FileCompiler(label, "strategy", p, lines, labels)
    seen: set[str] = set()
    entries = fc.rules(data["entry"], "strategy", seen)
    exits = fc.rules(data["exit"], "strategy", seen)
    size = fc.expr(data["size"], "strategy", "size", NUM)
    priority = fc.expr(data["priority"], "strategy", "priority", NUM) if "priority" in data else None
    strategy = StrategyRules(data["name"], entries, exits, size, priority, p)

    data, lines, label, p, h = _load_file(rules_dir, files["risk"], "risk", params.get("risk"))
    hashes[label] = h
    fc = _FileCompiler(label, "risk", p, lines, labels)
    seen = set()
    caps = []
    for c in data.get("caps") or []:
        where = fc.where(c["id"], "limit")
        if c["id"] in seen:
            raise RuleError(where, f"rule id '{c['id']}' is used twice", expected="unique ids within a file")
        seen.add(c["id"])
        cap = Cap(c["id"], c["type"])
        if c["type"] == "theme_weight":
            limits = _resolve(c.get("limits"), p, where, "limits")
            if not isinstance(limits, dict) or "default" not in limits:
                raise RuleError(where, f"theme caps are {limits!r}", expected="a mapping of theme -> fraction with a 'default'")
            cap.limits = {str(k): _fraction(v, where, f"theme cap '{k}'") for k, v in limits.items()}
        else:
            if "limit" not in c:
                raise RuleError(where, f"cap type {c['type']} needs 'limit'")
            lim = _resolve(c["limit"], p, where, "limit")
            cap.limit = (_positive_int(lim, where, "limit") if c["type"] == "position_count"
                         else _fraction(lim, where, "limit"))
            per = _resolve(c.get("per_symbol") or {}, p, where, "per_symbol") or {}
            if not isinstance(per, dict):
                raise RuleError(where, f"per_symbol caps are {per!r}", expected="a mapping of symbol -> fraction")
            cap.per_symbol = {str(k): _fraction(v, where, f"cap of {k}") for k, v in per.items()}
        caps.append(cap)
    halts = []
    for hd in data.get("halts") or []:
        rule = fc.rules([hd], "risk.halts", seen)[0]
        cd = _positive_int(_resolve(hd.get("cooldown_bars", 1), p, rule.where, "cooldown_bars"), rule.where, "cooldown_bars")
        halts.append(Halt(rule, hd["action"], cd))
    vetoes = fc.rules(data.get("vetoes") or [], "risk.vetoes", seen)
    risk = RiskRules(caps, halts, vetoes, p)

    data, lines, label, p, h = _load_file(rules_dir, files["execution"], "execution", params.get("execution"))
    hashes[label] = h
    fc = _FileCompiler(label, "execution", p, lines, labels)
    guards = fc.rules(data.get("guards") or [], "execution", set())
    execution = ExecutionRules(guards, (data.get("order") or {}).get("type", "market"), p)

    return RuleSet(regime, universe, strategy, risk, execution, hashes)
