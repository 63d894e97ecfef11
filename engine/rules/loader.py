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
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import cerberus
import yaml

from engine import yamlfast
from engine.paths import RuleFolders, leaves_root
from engine.validators import validator

from engine.rules.bounds import MAX_COUNT_BARS, MAX_TTL_MS, MAX_TTL_TEXT
from contextlib import contextmanager

from engine.rules.errors import RuleError, RuleErrors, Where
from engine.rules.expr import BOOL, CYCLE, CONST, NUM, Expr, Namespace, compile_expression
from engine.rules.names import KIND_NAMES, types
from engine.rules.schema import SCHEMAS

KINDS = ("regime", "universe", "strategy", "risk", "execution")
DEFAULT_FILES = {"regime": "regime.yaml", "universe": "universe.yaml", "strategy": "strategies/sma_cross.yaml",
                 "risk": "risk.yaml", "execution": "execution.yaml"}


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
    # where index.exclude_themes is written, for errors that need the market to be found
    exclude_where: Where = field(default_factory=lambda: Where("rules/regime.yaml", "", "index.exclude_themes"))
    timeframe: str | None = None  # the file's `timeframe:` (None: the data's own bars)

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


@dataclass(frozen=True)
class Protection:
    """One price protection of a strategy's ``protect:`` block, fixed at entry: a constant
    ``fraction`` of the entry price (of the highest high, for a trailing stop), or a
    ``distance`` in price units, a market expression read at the entry's decision bar."""

    kind: str  # stop_loss | take_profit | trailing_stop
    where: Where
    source: str
    fraction: float | None = None
    distance: Expr | None = None


@dataclass(frozen=True)
class ProtectRules:
    stop_loss: Protection | None = None
    take_profit: Protection | None = None
    trailing_stop: Protection | None = None
    time_stop: int | None = None  # bars held; the position is sold at the open of that bar

    @property
    def active(self) -> bool:
        return any(x is not None for x in (self.stop_loss, self.take_profit, self.trailing_stop, self.time_stop))

    @property
    def prices(self) -> tuple[Protection, ...]:
        return tuple(x for x in (self.stop_loss, self.take_profit, self.trailing_stop) if x is not None)


@dataclass
class StrategyRules:
    name: str
    entries: list[Rule]
    exits: list[Rule]
    size: Expr
    priority: Expr | None
    params: dict
    protect: ProtectRules = field(default_factory=ProtectRules)


@dataclass
class Sleeve:
    """One strategy of a book: its rules (ids prefixed ``name.``), and its fixed share of equity
    (None under inverse-volatility allocation)."""

    name: str
    strategy: StrategyRules
    weight: float | None
    file: str


@dataclass
class Book:
    """Several strategies in one account (docs/rules.md, "Books"): one set of risk caps, each
    position owned by the strategy that opened it."""

    sleeves: tuple[Sleeve, ...]
    allocation: str  # fixed | inverse_vol
    vol_window: int  # bars of the trailing volatility (inverse_vol)

    def owner_of(self, rule_id: str) -> int:
        """The sleeve index a (prefixed) rule id belongs to; -1 for none (a halt's, '')."""
        name = rule_id.split(".", 1)[0] if "." in rule_id else None
        return next((k for k, sl in enumerate(self.sleeves) if sl.name == name), -1)


BOOK_SEP = "."  # a book's rule ids read "<strategy>.<rule id>"


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


@dataclass(frozen=True)
class Lock:
    """A scoped protection of the risk file that locks entries (cooldown, stop_outs, low_profit):
    when it fires on a closed trade, new entries into its scope (the trade's symbol, every
    symbol of its theme, or all) are blocked for ``lock_bars`` bars."""

    id: str
    type: str  # cooldown | stop_outs | low_profit
    scope: str  # symbol | theme | portfolio
    lock_bars: int
    where: Where
    count: int = 1  # stop_outs: stop-outs within window_bars that fire it
    window_bars: int = 1
    min_trades: int = 1  # low_profit: closed trades within window_bars ...
    min_return: float = 0.0  # ... whose summed return is below this
    themes: tuple[str, ...] = ()  # only trades of these themes count (empty: all)
    themes_where: Where | None = None
    why: str = ""


@dataclass
class RiskRules:
    caps: list[Cap]
    halts: list[Halt]
    vetoes: list[Rule]
    params: dict
    locks: list[Lock] = field(default_factory=list)


@dataclass
class ExecutionRules:
    guards: list[Rule]
    order_type: str
    params: dict
    offset_bps: float = 0.0  # limit orders: price = reference x (1 -/+ offset) for buys/sells


@dataclass
class RuleSet:
    regime: RegimeRules
    universe: UniverseRules
    strategy: StrategyRules
    risk: RiskRules
    execution: ExecutionRules
    file_hashes: dict[str, str]  # file -> sha256 of its text (recorded with every run)
    # several strategies in one account: ``strategy`` then holds all their rules, ids prefixed
    book: Book | None = None

    def all_rules(self) -> list[tuple[str, Rule]]:
        """(stage, rule) for every expression rule, in pipeline order."""
        out = [("regime", r) for r in self.regime.rules]
        out += [("universe", r) for r in self.universe.filters]
        out += [("entry", r) for r in self.strategy.entries] + [("exit", r) for r in self.strategy.exits]
        out += [("veto", r) for r in self.risk.vetoes] + [("halt", h.rule) for h in self.risk.halts]
        out += [("guard", r) for r in self.execution.guards]
        return out


# -- reading ----------------------------------------------------------------------------------


class LineMap(dict):
    """A YAML mapping that remembers the line of each key's value (1-based)."""

    line: int = 0
    lines: dict

    def line_of(self, key: str) -> int | None:
        return getattr(self, "lines", {}).get(key, None) or (self.line or None)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int):
        self.key, self.line, self.first = key, line, first


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (YAML would silently keep the last) and records lines."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    out = LineMap()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, f"a key of type {type(key).__name__}", k_node.start_mark)
        line = v_node.start_mark.line + 1 + (1 if getattr(v_node, "style", None) in (">", "|") else 0)
        if key in out:
            raise _DuplicateKey(key, k_node.start_mark.line + 1, out.lines[key])
        out[key] = loader.construct_object(v_node, deep=True)
        out.lines[key] = line
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_CLoader = yamlfast.c_loader(_Loader)  # the same constructors over libyaml's parser


def _read_yaml(path: Path, label: str) -> tuple[LineMap, str]:
    """The mapping in ``path`` (with line numbers) and the file's text."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RuleError(Where(label), "rule file not found", expected=f"a file at {path}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise RuleError(Where(label), f"cannot read the rule file ({type(exc).__name__})",
                        expected="a readable UTF-8 text file") from None
    try:
        data = yamlfast.load(text, _Loader, _CLoader)  # _Loader is a SafeLoader subclass
    except _DuplicateKey as exc:
        raise RuleError(Where(label, yaml_line=exc.line), f"key '{exc.key}' appears twice in the same mapping "
                        f"(first on line {exc.first})", expected="each key once") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RuleError(Where(label, yaml_line=mark.line + 1 if mark else None),
                        f"invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        raise RuleError(Where(label), "the rule file is empty", expected="a mapping with 'kind:' at the top")
    if not isinstance(data, dict):
        raise RuleError(Where(label), f"the file holds a {type(data).__name__}", expected="a mapping with 'kind:' at the top")
    return data, text


def _did_you_mean(word: str, choices: list[str] | tuple[str, ...], show: str = "{}") -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` (shown through ``show``), or ''."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{show.format(close[0])}'?)" if close else ""


def _leaf_errors(errors: list) -> list:
    out = []
    for e in errors:
        if e.is_group_error:
            out += _leaf_errors(e.child_errors)
        else:
            out.append(e)
    return out


def _sub_schema(schema: Mapping[str, Any], path: tuple) -> Mapping[str, Any]:
    """The schema of the mapping at ``path`` (for did-you-mean on unknown keys)."""
    node: Any = {"schema": schema, "type": "dict"}
    for part in path:
        if isinstance(part, int):
            node = node.get("schema", {})
        else:
            node = (node.get("schema") or {}).get(part, {})
    return node.get("schema", {}) if node.get("type") == "dict" else {}


def _describe_error(e: Any, schema: Mapping[str, Any]) -> tuple[str, str | None]:
    """(message, expected) of one Cerberus error, in an ops person's words."""
    field_ = e.document_path[-1] if e.document_path else ""
    if e.code == cerberus.errors.UNKNOWN_FIELD.code:
        known = list(_sub_schema(schema, e.document_path[:-1]))
        return f"unknown key '{field_}'{_did_you_mean(str(field_), known)}", "one of " + ", ".join(known)
    if e.code == cerberus.errors.REQUIRED_FIELD.code:
        return f"required key '{field_}' is missing", None
    if e.rule == "type":
        want = e.constraint if isinstance(e.constraint, list) else [e.constraint]
        return f"'{field_}' is {_show(e.value)}", " or ".join({"dict": "a mapping", "list": "a list", "integer": "an integer"}.get(w, f"a {w}") for w in want)
    if e.rule == "allowed":
        return f"'{field_}' is {_show(e.value)}", "one of " + ", ".join(map(str, e.constraint))
    if e.rule == "regex":
        return f"'{field_}' is {_show(e.value)}", "a name of letters, digits and '_' that does not start with a digit"
    if e.rule in ("min", "max"):
        rules: Any = schema
        for part in e.schema_path[:-1]:
            rules = rules.get(part, {}) if isinstance(rules, Mapping) else {}
        lo, hi = rules.get("min"), rules.get("max")
        rng = f"from {lo:g} to {hi:g}" if lo is not None and hi is not None else f">= {lo:g}" if lo is not None else f"<= {hi:g}"
        return f"'{field_}' is {_show(e.value)}", f"a number {rng}"
    if e.rule == "minlength":
        return f"'{field_}' is empty", f"at least {e.constraint} item(s)"
    return f"'{field_}': {cerberus.errors.BasicErrorHandler.messages.get(e.code, e.rule)}", None


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _locate(data: Any, path: tuple) -> tuple[str, int | None]:
    """The rule id and the YAML line of the value at ``path``."""
    rule, line, node = "", getattr(data, "line", None), data
    for part in path:
        parent = node
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            line = parent.line_of(part) if isinstance(parent, LineMap) else line
            break
        if isinstance(parent, LineMap):
            line = parent.line_of(part) or line
        if isinstance(node, LineMap):
            rule = str(node.get("id", rule)) if isinstance(node.get("id"), str) else rule
            line = node.line or line
    return rule, line


def _validate(data: dict, kind: str, label: str, every: bool = False) -> None:
    """Raise the file's first schema error (``every``: all of them, as one RuleErrors)."""
    schema = SCHEMAS[kind]
    v = validator(f"rules:{kind}", schema)
    if v.validate(data):
        return
    leaves = sorted(_leaf_errors(v._errors), key=lambda e: _locate(data, e.document_path)[1] or 0)
    errors = []
    for leaf in leaves:
        rule, line = _locate(data, leaf.document_path)
        message, expected = _describe_error(leaf, schema)
        path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in leaf.document_path).replace(".[", "[")
        more = f" (and {len(leaves) - 1} more problem(s) in this file)" if len(leaves) > 1 and not every else ""
        errors.append(RuleError(Where(label, rule, path, line), message + more, expected=expected))
        if not every:
            raise errors[0]
    raise RuleErrors(errors)


class _Sink:
    """Where a rule file's errors go: raised at once (loading for a run), or gathered so that
    mode=validate reports every one (``gather``). A failing part is skipped; the parts after it
    still run."""

    def __init__(self, gather: bool):
        self.errors: list[RuleError] | None = [] if gather else None

    @contextmanager
    def part(self):
        try:
            yield
        except RuleError as e:
            if self.errors is None:
                raise
            self.errors.extend(e.errors if isinstance(e, RuleErrors) else [e])


FINITE = "a finite number (NaN and infinity are not allowed)"


def _non_finite(node: Any, path: tuple = ()) -> tuple[tuple, float] | None:
    """The path and value of the first NaN or infinity in a parsed file, in file order."""
    if isinstance(node, float):
        return None if math.isfinite(node) else (path, node)
    items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        found = _non_finite(v, path + (k,))
        if found is not None:
            return found
    return None


def _check_finite(data: dict, label: str) -> None:
    # YAML reads `.nan` and `.inf` as numbers, and both pass every range check (a NaN offset_bps
    # made every limit order a market order): no rule file holds one anywhere.
    found = _non_finite(data)
    if found is None:
        return
    path, value = found
    rule, line = _locate(data, path)
    key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")
    raise RuleError(Where(label, rule, key, line), f"'{path[-1]}' is {value!r}", expected=FINITE)


def _merge_params(file_params: dict, overrides: Mapping[str, Any] | None, label: str) -> dict:
    params = copy.deepcopy(file_params or {})
    for k, v in (overrides or {}).items():
        if k not in params:
            raise RuleError(Where(label), f"config sets params.{k}, which the rule file does not define"
                            f"{_did_you_mean(k, list(params))}",
                            expected="one of " + ", ".join(sorted(params)))
        params[k] = _check_override(k, params[k], v, label)
        if _non_finite(params[k]) is not None:
            raise RuleError(Where(label, "", f"params.{k}"), f"config sets params.{k} to {_show(v)}", expected=FINITE)
    return params


def _kind_of(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, Mapping):
        return "a mapping"
    if isinstance(v, (list, tuple)):
        return "a list"
    return "null" if v is None else f"a {type(v).__name__}"


def _check_override(key: str, default: Any, value: Any, label: str) -> Any:
    """An override keeps the kind of the file's default (a number stays a number)."""
    if default is None or _kind_of(default) == _kind_of(value):
        return value
    raise RuleError(Where(label, "", f"params.{key}"), f"config sets params.{key} to {_show(value)}, {_kind_of(value)}",
                    expected=f"{_kind_of(default)} like the rule file's default {_show(default)}")


_BARE_PARAM = re.compile(r"^\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*$")


def _resolve(value: Any, params: dict, where: Where, what: str) -> Any:
    """A literal, ``params.x`` resolved from the params (a mapping param too), or an expression
    of literals and params (``params.top * 2``) computed at load."""
    if not isinstance(value, str):
        return value
    bare = _BARE_PARAM.match(value)
    if bare:
        name = bare.group(1)
        if name not in params:
            raise RuleError(where, f"{what} refers to unknown {value.strip()}"
                                   f"{_did_you_mean(name, list(params), 'params.{}')}")
        return params[name]
    if "params." not in value:
        return value  # a plain word: the caller says what it expected
    expr = compile_expression(value, Namespace(series={}, params=params), where)
    if expr.level != CONST:  # pragma: no cover - a params-only namespace has nothing else
        raise RuleError(where, f"{what} is {value!r}", expected="literals and params.x only")
    return expr.value


def _positive_int(value: Any, where: Where, what: str, hi: int = MAX_COUNT_BARS) -> int:
    # math.isfinite first: int() of NaN or infinity raises, and a count beyond `hi` (a cooldown
    # of 1e20 bars) would silently last the whole run
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or int(value) != value or not 1 <= value <= hi):
        raise RuleError(where, f"{what} is {value!r}", expected=f"a positive whole number, at most {hi:,}")
    return int(value)


def _fraction(value: Any, where: Where, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:  # NaN fails too
        raise RuleError(where, f"{what} is {value!r}", expected="a fraction between 0 and 1")
    return float(value)


_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


def parse_duration_ms(value: Any, where: Where, what: str) -> int:
    """A duration (``30m``, ``24h``, ``7d``, ``1w``, or whole seconds) in ms, at most MAX_TTL_MS."""
    expected = f"a duration such as 30m, 24h, 7d, 1w (or seconds), at most {MAX_TTL_TEXT}"
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        ms = value * 1000
    else:
        m = _DURATION.match(str(value))
        if not m or int(m.group(1)) <= 0:
            raise RuleError(where, f"{what} is {_show(value)}", expected=expected)
        ms = int(m.group(1)) * {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}[m.group(2)]
    if ms > MAX_TTL_MS:
        # unbounded, it overflowed int64 where the cache's expiry bar is searched for
        raise RuleError(where, f"{what} is {_show(value)}, longer than {MAX_TTL_TEXT}", expected=expected)
    return ms


# -- compiling --------------------------------------------------------------------------------


class _FileCompiler:
    def __init__(self, label: str, kind: str, params: dict, regimes: tuple[str, ...], timeframe: str | None = None,
                 sink: _Sink | None = None):
        self.label, self.kind, self.params, self.regimes = label, kind, params, regimes
        self.sink = sink or _Sink(False)
        self.timeframe = timeframe  # the file's `timeframe:` (regime files): every rule reads those bars
        self.seen: dict[str, int | None] = {}  # rule id -> its line (ids are unique per file)

    def ns(self, names_key: str) -> Namespace:
        series, cycle = KIND_NAMES[names_key]
        return Namespace(series=types(series), cycle=types(cycle), params=self.params, regimes=self.regimes,
                         timeframe=self.timeframe)

    def where(self, item: Mapping, key: str, rule_id: str | None = None) -> Where:
        line = item.line_of(key) if isinstance(item, LineMap) else None
        return Where(self.label, rule_id if rule_id is not None else str(item.get("id", "")), key, line)

    def claim(self, item: Mapping) -> str:
        rid = item["id"]
        if rid in self.seen:
            raise RuleError(self.where(item, "id"), f"rule id '{rid}' is used twice (first on line {self.seen[rid]})",
                            expected="unique ids within a file")
        self.seen[rid] = item.line_of("id") if isinstance(item, LineMap) else None
        return rid

    def rules(self, items: list[Mapping], names_key: str) -> list[Rule]:
        out = []
        ns = self.ns(names_key)
        for item in items:
            with self.sink.part():  # one rule's error does not hide the next rule's
                out.append(self._rule(item, ns))
        return out

    def _rule(self, item: Mapping, ns: Namespace) -> Rule:
        rid = self.claim(item)
        regimes = self.regime_scope(item)
        if regimes is not None and self.regimes:
            for r in regimes:
                if r not in self.regimes:
                    raise RuleError(self.where(item, "regimes"),
                                    f"regime '{r}' is not defined by the regime file{_did_you_mean(r, self.regimes)}",
                                    expected="one of " + ", ".join(self.regimes))
        where = self.where(item, "when")
        expr = compile_expression(item["when"], ns, where, want=BOOL)
        why = item.get("why", "")
        self.check_template(why, item)
        return Rule(rid, expr, where, tuple(regimes) if regimes else None, why, str(item["when"]))

    def regime_scope(self, item: Mapping) -> list[str] | None:
        """The rule's ``regimes:``: a literal list or ``params.x`` naming a list param. An empty
        list from a param lifts the scope (the rule applies in every regime)."""
        regimes = item.get("regimes")
        if not isinstance(regimes, str):
            return regimes
        where = self.where(item, "regimes")
        value = _resolve(regimes, self.params, where, "regimes")
        if not isinstance(value, (list, tuple)) or not all(isinstance(r, str) for r in value):
            src = f" ({regimes})" if value is not regimes else ""
            raise RuleError(where, f"'regimes' is {_show(value)}{src}",
                            expected="a list of regimes such as [bull, chop], or params.x naming such a list")
        return list(value) or None

    def check_template(self, why: str, item: Mapping) -> None:
        for name in re.findall(r"\{([^}]*)\}", why or ""):
            if name == "value":
                continue
            if not name.startswith("params.") or name[len("params."):] not in self.params:
                hint = _did_you_mean(name, [f"params.{p}" for p in self.params] + ["value"], "{{{}}}")
                raise RuleError(self.where(item, "why"), f"message template names {{{name}}}{hint}",
                                expected="{value} or {params.<name>} of a defined param")

    def expr(self, src: Any, names_key: str, where: Where, want: str) -> Expr:
        return compile_expression(src, self.ns(names_key), where, want=want)


def _load_file(folders: RuleFolders, rel: str, kind: str, overrides: Mapping[str, Any] | None, every: bool = False):
    rules_dir, path = (folders.primary, Path(rel)) if Path(rel).is_absolute() else folders.find(rel)
    label = f"rules/{rel}" if not Path(rel).is_absolute() else str(path)
    outside = leaves_root(rules_dir, path)
    if outside is not None:
        # refused before it is read: a config could otherwise make the loader read (and its
        # errors quote) any file on the machine
        raise RuleError(Where(f"{kind}.file" if kind != "regime" else "regime.file"),
                        f"the {kind} rule file {rel!r} leads outside the rules folder {rules_dir} (to {outside})",
                        expected=f"a path inside {rules_dir} (e.g. {DEFAULT_FILES.get(kind, kind + '.yaml')}); "
                                 f"to use rule files elsewhere, set rules_dir to their folder")
    data, text = _read_yaml(path, label)
    if data.get("kind") != kind:
        raise RuleError(Where(label, "", "kind", data.line_of("kind")), f"kind is {data.get('kind')!r}",
                        expected=f"kind: {kind} (this file is given as the {kind} file)")
    _check_finite(data, label)  # first: NaN would pass the schema's ranges, -inf fail them unclearly
    digest = hashlib.sha256(text.encode()).hexdigest()
    # the schema check depends on the text alone: a sweep's points (a grid, a multirun's jobs)
    # load the same files hundreds of times and validate each text once
    if (kind, digest) not in _VALID_TEXTS:
        _validate(data, kind, label, every)
        _VALID_TEXTS.add((kind, digest))
    params = _merge_params(data.get("params") or {}, overrides, label)
    return data, label, params, digest


# (kind, sha256 of the file's text) of the rule files that passed their schema in this process
_VALID_TEXTS: set[tuple[str, str]] = set()


def _at(data: Mapping, section: str, key: str, label: str) -> Where:
    """Where a non-rule key lives, e.g. ``rank.top``."""
    sec = data.get(section)
    line = sec.line_of(key) if isinstance(sec, LineMap) else None
    return Where(label, "", f"{section}.{key}", line)


def load_ruleset(
    rules_dir: Path | str | RuleFolders,
    files: Mapping[str, str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    book: Mapping[str, Any] | None = None,
    gather: bool = False,
) -> RuleSet:
    """Load the five rule files. ``files`` maps kind -> path relative to ``rules_dir``;
    ``params`` maps kind -> overrides of that file's params (from the Hydra config). ``book``
    (the config's ``book`` section): several strategy files instead of ``files["strategy"]``.
    ``gather``: on errors, raise one :class:`RuleErrors` holding every error of every file (each
    schema error, each rule, each cap, halt and protection), not only the first (mode=validate)."""
    # one folder, or a project's rules/ over the built-in one (engine.paths.rule_folders)
    rules_dir = rules_dir if isinstance(rules_dir, RuleFolders) else RuleFolders((Path(rules_dir),))
    params = params or {}
    hashes: dict[str, str] = {}
    missing = [k for k in KINDS if k not in files and not (k == "strategy" and book is not None)]
    if missing:
        raise RuleError(Where("config"), f"no rule file given for {', '.join(missing)}")
    sink = _Sink(gather)
    part = sink.part
    labels: tuple[str, ...] = ()  # a broken regime file: the others' regime names are not checked
    regime = universe = strategy = risk = execution = book_rules = None

    # regime first: its labels are what the other files may name
    with part():
        data, label, p, h = _load_file(rules_dir, files["regime"], "regime", params.get("regime"), gather)
        hashes[label] = h
        fc = _FileCompiler(label, "regime", p, (), data.get("timeframe"), sink)
        regime_rules = fc.rules(data["regimes"], "regime")
        default = data["default"]
        regime = RegimeRules(regime_rules, default, tuple((data.get("index") or {}).get("exclude_themes", [])), p,
                             _at(data, "index", "exclude_themes", label), data.get("timeframe"))
        labels = regime.labels

    with part():
        data, label, p, h = _load_file(rules_dir, files["universe"], "universe", params.get("universe"), gather)
        hashes[label] = h
        fc = _FileCompiler(label, "universe", p, labels, sink=sink)
        filters = fc.rules(data.get("filters") or [], "universe")
        rank = data.get("rank") or {}
        rank_by, top, ttl = None, 10**9, 0
        with part():
            rank_by = fc.expr(rank["by"], "universe", _at(data, "rank", "by", label), NUM) if "by" in rank else None
        with part():
            w_top = _at(data, "rank", "top", label)
            top = _positive_int(_resolve(rank["top"], p, w_top, "rank.top"), w_top, "rank.top") if "top" in rank else 10**9
        cache = data.get("cache") or {}
        with part():
            w_ttl = _at(data, "cache", "ttl", label)
            ttl = parse_duration_ms(cache.get("ttl", "1h"), w_ttl, "cache.ttl")
        universe = UniverseRules(filters, rank_by, bool(rank.get("descending", True)), top, ttl,
                                 bool(cache.get("rebuild_on_regime_change", True)), p)

    with part():
        if book is None:
            strategy = _load_strategy(rules_dir, files["strategy"], params.get("strategy"), labels, hashes, sink)
        else:
            book_rules = _load_book(rules_dir, book, labels, hashes)
            strategy = _book_strategy(book_rules)

    with part():
        data, label, p, h = _load_file(rules_dir, files["risk"], "risk", params.get("risk"), gather)
        hashes[label] = h
        fc = _FileCompiler(label, "risk", p, labels, sink=sink)
        caps = []
        for c in data.get("caps") or []:
            with part():
                caps.append(_cap(c, fc, p))
        halts = []
        for hd in data.get("halts") or []:
            with part():
                rules = fc.rules([hd], "risk.halts")
                if rules:  # (gathering: its error is already recorded)
                    w_cd = fc.where(hd, "cooldown_bars")
                    cd = _positive_int(_resolve(hd.get("cooldown_bars", 1), p, w_cd, "cooldown_bars"), w_cd,
                                       "cooldown_bars")
                    halts.append(Halt(rules[0], hd["action"], cd))
        vetoes = fc.rules(data.get("vetoes") or [], "risk.vetoes")
        locks = []
        for pd in data.get("protections") or []:
            with part():
                got = _protection(pd, fc, p)
                (halts if isinstance(got, list) else locks).extend(got if isinstance(got, list) else [got])
        risk = RiskRules(caps, halts, vetoes, p, locks)

    with part():
        data, label, p, h = _load_file(rules_dir, files["execution"], "execution", params.get("execution"), gather)
        hashes[label] = h
        fc = _FileCompiler(label, "execution", p, labels, sink=sink)
        guards = fc.rules(data.get("guards") or [], "execution")
        order = data.get("order") or {}
        execution = ExecutionRules(guards, order.get("type", "market"), p, float(order.get("offset_bps", 0.0)))

    if sink.errors:
        raise RuleErrors(sink.errors)
    return RuleSet(regime, universe, strategy, risk, execution, hashes, book_rules)


def _load_strategy(rules_dir: RuleFolders, rel: str, overrides: Mapping[str, Any] | None, labels: tuple[str, ...],
                   hashes: dict[str, str], sink: _Sink | None = None) -> StrategyRules:
    sink = sink or _Sink(False)
    data, label, p, h = _load_file(rules_dir, rel, "strategy", overrides, sink.errors is not None)
    hashes[label] = h
    fc = _FileCompiler(label, "strategy", p, labels, sink=sink)
    entries = fc.rules(data["entry"], "strategy")
    exits = fc.rules(data["exit"], "strategy")
    size = priority = protect = None
    with sink.part():
        w_size = Where(label, "", "size", data.line_of("size"))
        size = fc.expr(data["size"], "strategy", w_size, NUM)
        # the compiled expression, not the text: 'params.weight * 0.5' is as constant as '0.5 * params.weight'
        size_value = size.value if size.level == CONST else None
        if isinstance(size_value, (int, float)) and not isinstance(size_value, bool) and size_value < 0:
            # a constant below 0 would be clipped to 0 for every symbol: the strategy would never buy
            src = f" ({data['size']})" if isinstance(data["size"], str) else ""
            raise RuleError(w_size, f"size is {size_value!r}{src}",
                            expected="a target weight >= 0 (a fraction of equity, e.g. 0.1)")
    with sink.part():
        priority = (fc.expr(data["priority"], "strategy", Where(label, "", "priority", data.line_of("priority")), NUM)
                    if "priority" in data else None)
    with sink.part():
        protect = _protect(data, fc, p, label)
    return StrategyRules(data["name"], entries, exits, size, priority, p, protect)


_BOOK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ALLOCATIONS = ("fixed", "inverse_vol")


def _load_book(rules_dir: RuleFolders, book: Mapping[str, Any], labels: tuple[str, ...], hashes: dict[str, str]) -> Book:
    """The ``book`` config section: ``allocation``, ``vol_window`` and ``strategies`` (name ->
    ``{file, weight, params}``), each strategy file loaded with its own params."""
    allocation = book.get("allocation", "fixed")
    if allocation not in ALLOCATIONS:
        raise RuleError(Where("book.allocation"), f"allocation is {allocation!r}", expected="one of " + ", ".join(ALLOCATIONS))
    vol_window = _positive_int(book.get("vol_window", 720), Where("book.vol_window"), "vol_window")
    strategies = book.get("strategies") or {}
    if not isinstance(strategies, Mapping) or len(strategies) < 1:
        raise RuleError(Where("book.strategies"), f"the book's strategies are {_show(strategies)}",
                        expected="a mapping of strategy name -> {file, weight, params}")
    sleeves = []
    for name, spec in strategies.items():
        where = Where(f"book.strategies.{name}")
        if not isinstance(name, str) or not _BOOK_NAME.match(name):
            raise RuleError(where, f"strategy name {name!r}", expected="a snake_case name such as trend")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("file"), str):
            raise RuleError(where, f"the strategy is {_show(spec)}", expected="a mapping with file: strategies/x.yaml")
        weight = spec.get("weight")
        if allocation == "fixed":
            weight = _fraction(weight, Where(f"book.strategies.{name}.weight"), "weight")
        elif weight is not None:
            raise RuleError(Where(f"book.strategies.{name}.weight"), f"weight is {weight!r} under inverse_vol",
                            expected=f"no weight: inverse_vol sets each share from volatility (on the command line: "
                                     f"~book.strategies.{name}.weight), or allocation: fixed")
        rules = _load_strategy(rules_dir, spec["file"], spec.get("params"), labels, hashes)
        if rules.protect.active:
            # the simulated broker keeps one protect block per account: a book's strategies would share it
            raise RuleError(Where(spec["file"], "protect"), f"strategy {name} of the book has a protect: block",
                            expected="no protect: block in a book's strategy files (a book does not apply "
                                     "per-strategy protections yet); use the risk file's protections: instead")
        sleeves.append(Sleeve(name, _prefixed(rules, name), weight, spec["file"]))
    if allocation == "fixed":
        total = sum(sl.weight for sl in sleeves)
        if total > 1 + 1e-9 or total <= 0:
            raise RuleError(Where("book.strategies"), f"the strategies' weights add up to {total:g}",
                            expected="a total above 0 and at most 1 (a share of the account each)")
    return Book(tuple(sleeves), allocation, vol_window)


def _prefixed(s: StrategyRules, name: str) -> StrategyRules:
    """A book's copy of a strategy: rule ids ``name.id`` (a fill names its strategy) and its
    messages' ``{params.x}`` filled with this strategy's own params (two strategies' params may
    share names)."""
    def fill(why: str) -> str:
        return re.sub(r"\{params\.([A-Za-z_][A-Za-z0-9_]*)\}",
                      lambda m: str(s.params[m.group(1)]) if m.group(1) in s.params else m.group(0), why or "")

    def ren(rules: list[Rule]) -> list[Rule]:
        return [Rule(f"{name}{BOOK_SEP}{r.id}", r.when, r.where, r.regimes, fill(r.why), r.source) for r in rules]
    return StrategyRules(s.name, ren(s.entries), ren(s.exits), s.size, s.priority, s.params, s.protect)


def _book_strategy(book: Book) -> StrategyRules:
    """Every strategy's rules in book order, as one strategy for what reads rules by stage (the
    trace, explain, the lookahead proof, the quiet-bar scan); sizing reads the sleeves."""
    first = book.sleeves[0].strategy
    return StrategyRules("+".join(sl.name for sl in book.sleeves),
                         [r for sl in book.sleeves for r in sl.strategy.entries],
                         [r for sl in book.sleeves for r in sl.strategy.exits],
                         first.size, None, {})


_PROTECT_WHAT = {
    "stop_loss": "the stop sells below the entry price",
    "take_profit": "the take-profit sells above the entry price",
    "trailing_stop": "the trailing stop sells below the highest high since entry",
}


def _protect(data: Mapping, fc: _FileCompiler, p: dict, label: str) -> ProtectRules:
    """The strategy's ``protect:`` block, checked at load (docs/rules.md, Protections)."""
    block = data.get("protect")
    if not block:
        return ProtectRules()
    line = block.line if isinstance(block, LineMap) else None

    def where(key: str) -> Where:
        return Where(label, "protect", key, block.line_of(key) if isinstance(block, LineMap) else line)

    found: dict[str, Protection] = {}
    for kind in ("stop_loss", "take_profit", "trailing_stop"):
        if kind not in block:
            continue
        w = where(kind)
        src = block[kind]
        expr = compile_expression(src, fc.ns("strategy"), w, want=NUM)
        if expr.level == CYCLE:
            names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", str(src)))
            reads = ", ".join(sorted(names & set(fc.ns("strategy").cycle))) or "the portfolio"
            raise RuleError(w, f"{kind} {src!r} reads {reads}, which is known only after the entry fills "
                               f"(in the bar after the decision): a level fixed at entry from it reads the future",
                            expected="a fraction such as 0.05, or an expression of market data such as 2 * atr(14)")
        if expr.level == CONST:
            v = float(expr.value)
            if kind == "take_profit":
                if not v > 0:
                    sl = found.get("stop_loss")
                    below = (f": the take-profit at {100 * (1 + v):g}% of the entry price is at or below the stop at "
                             f"{100 * (1 - sl.fraction):g}%" if sl is not None and sl.fraction is not None
                             and 1 + v <= 1 - sl.fraction else ": at or below the entry price, it would sell at once")
                    raise RuleError(w, f"take_profit is {v:g}{below}",
                                    expected="a fraction > 0 (0.1: sell 10% above the entry price)")
            elif not 0 < v < 1:
                raise RuleError(w, f"{kind} is {v:g}: {_PROTECT_WHAT[kind]} by {100 * v:g}%"
                                   + (", a level at or below zero that can never trigger" if v >= 1 else
                                      ", which is no protection" if v <= 0 else ""),
                                expected="a fraction between 0 and 1, exclusive (0.05: 5% below)")
            found[kind] = Protection(kind, w, str(src), fraction=v)
        else:
            found[kind] = Protection(kind, w, str(src), distance=expr)
    time_stop = None
    if "time_stop" in block:
        w = where("time_stop")
        time_stop = _positive_int(_resolve(block["time_stop"], p, w, "time_stop"), w, "time_stop")
    return ProtectRules(found.get("stop_loss"), found.get("take_profit"), found.get("trailing_stop"), time_stop)


def _protection(d: Mapping, fc: _FileCompiler, p: dict) -> "Lock | list[Halt]":
    """One entry of the risk file's ``protections:`` (docs/rules.md, Scoped protections). The
    equity stop becomes two portfolio halts, ``<id>.reducing`` (block entries: exits only) and
    ``<id>.halted`` (flatten, held ``lock_bars``), so it runs, traces and reports as halts do."""
    rid = fc.claim(d)
    kind = d["type"]

    def num(key: str, default=None, lo=None, hi=None, what="a number"):
        w = fc.where(d, key)
        if key not in d:
            if default is None:
                raise RuleError(w, f"protection type {kind} needs '{key}'", expected=f"{key}: {what} or params.x")
            return default
        v = _resolve(d[key], p, w, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (lo is not None and not v > lo) \
                or (hi is not None and not v < hi):
            raise RuleError(w, f"{key} is {v!r}", expected=what)
        return float(v)

    def bars(key: str, default=None) -> int:
        w = fc.where(d, key)
        if key not in d:
            if default is None:
                raise RuleError(w, f"protection type {kind} needs '{key}'", expected=f"{key}: a whole number of bars")
            return default
        return _positive_int(_resolve(d[key], p, w, key), w, key)

    if kind == "equity_stop":
        if d.get("scope", "portfolio") != "portfolio" or "themes" in d:
            raise RuleError(fc.where(d, "scope" if "scope" in d else "themes"),
                            "an equity stop measures the whole account's equity",
                            expected="scope: portfolio (or no scope), no themes")
        frac = "a fraction of the peak equity between 0 and 1, exclusive"
        reduce_at = num("reduce_at", lo=0, hi=1, what=frac)
        halt_at = num("halt_at", lo=0, hi=1, what=frac)
        if halt_at <= reduce_at:
            raise RuleError(fc.where(d, "halt_at"), f"halt_at {halt_at:g} is not beyond reduce_at {reduce_at:g}",
                            expected="halt_at > reduce_at (reducing first, then halted)")
        lock = bars("lock_bars")
        out = []
        for state, level, action, cooldown in (("reducing", reduce_at, "block_entries", 1),
                                               ("halted", halt_at, "flatten", lock)):
            w = fc.where(d, "reduce_at" if state == "reducing" else "halt_at", rid)
            src = f"portfolio.drawdown <= -{level!r}"
            why = d.get("why") or f"equity {100 * level:g}% below its peak: {state}"
            out.append(Halt(Rule(f"{rid}.{state}", fc.expr(src, "risk.halts", w, BOOL), w, None, why, src),
                            action, cooldown))
        return out
    scope = d.get("scope", "symbol")
    themes = tuple(d.get("themes") or ())
    common = dict(id=rid, type=kind, scope=scope, where=fc.where(d, "type"), themes=themes,
                  themes_where=fc.where(d, "themes") if themes else None, why=d.get("why", ""))
    for key in ("reduce_at", "halt_at"):
        if key in d:
            raise RuleError(fc.where(d, key), f"'{key}' belongs to an equity_stop, not a {kind}",
                            expected="count, window_bars, lock_bars, min_trades, min_return as the type needs")
    if kind == "cooldown":
        return Lock(**common, lock_bars=bars("lock_bars"))
    if kind == "stop_outs":
        return Lock(**common, lock_bars=bars("lock_bars"), count=bars("count"), window_bars=bars("window_bars"))
    return Lock(**common, lock_bars=bars("lock_bars"), window_bars=bars("window_bars"),
                min_trades=bars("min_trades", 1), min_return=num("min_return", 0.0, lo=-1, what="a return above -1"))


def check_lock_themes(rules: "RuleSet", themes: tuple[str, ...]) -> None:
    """A protection that names a theme no product has would never fire: refused (the market's
    themes are known only once it is loaded)."""
    for lk in rules.risk.locks:
        for th in lk.themes:
            if th not in themes:
                raise RuleError(lk.themes_where, f"theme '{th}' is not the theme of any traded product"
                                f"{_did_you_mean(th, themes)}", expected="one of " + ", ".join(themes))


def _cap(c: Mapping, fc: _FileCompiler, p: dict) -> Cap:
    fc.claim(c)
    cap = Cap(c["id"], c["type"])
    if c["type"] == "theme_weight":
        where = fc.where(c, "limits")
        limits = _resolve(c.get("limits"), p, where, "limits")
        if not isinstance(limits, Mapping) or "default" not in limits:
            raise RuleError(where, f"theme caps are {_show(limits)}", expected="a mapping of theme -> fraction with a 'default'")
        cap.limits = {str(k): _fraction(v, where, f"theme cap '{k}'") for k, v in limits.items()}
        return cap
    where = fc.where(c, "limit")
    if "limit" not in c:
        raise RuleError(where, f"cap type {c['type']} needs 'limit'", expected="limit: a number or params.x")
    lim = _resolve(c["limit"], p, where, "limit")
    cap.limit = _positive_int(lim, where, "limit") if c["type"] == "position_count" else _fraction(lim, where, "limit")
    w_per = fc.where(c, "per_symbol")
    per = _resolve(c.get("per_symbol") or {}, p, w_per, "per_symbol") or {}
    if not isinstance(per, Mapping):
        raise RuleError(w_per, f"per_symbol caps are {_show(per)}", expected="a mapping of symbol -> fraction")
    cap.per_symbol = {str(k): _fraction(v, w_per, f"cap of {k}") for k, v in per.items()}
    return cap
