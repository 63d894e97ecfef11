"""The rule expression language: Python syntax, parsed with ``ast``, checked against a
whitelist and compiled to numpy. Nothing is ever ``eval``ed.

Every node has a *type* (number, bool, string) and a *level*:

- CONST: known at load (literals, ``params.x``);
- SERIES: a function of market history only (``close``, ``sma(close, 50)``, ``theme``,
  ``regime``). Computed once over the whole (time x symbol) history by :class:`FeatureStore`
  and read at row t each cycle: fast, and look-back only by construction because every
  series function is;
- CYCLE: depends on the portfolio or the order being placed (``position.return_pct``,
  ``portfolio.drawdown``, ``order.notional``): evaluated per cycle over the whole universe.

``compile_expression`` returns an :class:`Expr`; ``Expr.bind(store)`` returns a closure
``fn(env, t) -> ndarray | scalar`` that the cycle calls.
"""
from __future__ import annotations

import ast
import difflib
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, MutableMapping

import numpy as np

from engine import detmath
from engine.rules.errors import RuleError, Where
from engine.market.coarse import on_base_clock
from engine.market.data import TIMEFRAME_MS
from engine.rules.functions import FUNCTIONS, FunctionSpec, signature

NUM, BOOL, STR = "number", "bool", "string"
CONST, SERIES, CYCLE = 0, 1, 2

# on(timeframe, expr): the one special form (its first argument is a timeframe, not a value)
ON_SIGNATURE = 'on("1d", expr)'
# series that exist on the base bars only (the cycle's regime label): not readable inside on()
BASE_CLOCK_ONLY = ("regime",)

# Roots reachable with a dot. Everything else with a dot is rejected.
DOTTED_ROOTS = ("params", "position", "portfolio", "order")


@dataclass(frozen=True)
class Namespace:
    """The names an expression may use, by level, with their types."""

    series: Mapping[str, str]  # name -> type; values live in the FeatureStore
    cycle: Mapping[str, str] = field(default_factory=dict)  # dotted or plain name -> type
    params: Mapping[str, Any] = field(default_factory=dict)
    regimes: tuple[str, ...] = ()  # labels the regime file defines (checks "regime == 'x'")
    timeframe: str | None = None  # the file's `timeframe:`: every expression reads those bars

    def all_names(self) -> list[str]:
        return sorted([*self.series, *self.cycle, *(f"params.{p}" for p in self.params)])


class FeatureStore:
    """Arrays shared by every rule of a run, keyed by canonical expression text.

    ``base`` holds the named series (forward-filled market columns, static per-symbol
    columns broadcast to (T, N), the regime labels); computed features are added on demand
    and reused across rules and files (``sma(close, 50)`` is computed once).
    """

    def __init__(self, base: Mapping[str, np.ndarray], shape: tuple[int, int],
                 coarser: Callable[[str], tuple["FeatureStore", np.ndarray]] | None = None):
        self.shape = shape
        # a mutable mapping is kept as is, so a lazy one (market columns built on first
        # read) stays lazy
        self.arrays = base if isinstance(base, MutableMapping) else dict(base)
        # timeframe -> (the store of the coarser bars, per base bar the last closed coarse row)
        self._coarser = coarser
        self._coarse: dict[str, tuple[FeatureStore, np.ndarray]] = {}
        # the keys this store was asked for: what its rules read, even when ``arrays`` is shared
        # with other rule sets (engine/cycle/shared.py) and holds their features too
        self.used: set[str] = set()

    def coarse(self, timeframe: str) -> tuple["FeatureStore", np.ndarray]:
        """The store of ``timeframe`` bars built from these and the base bar -> closed coarse row
        map (engine/market/coarse.py); built once per timeframe. ValueError: it cannot be built."""
        if timeframe not in self._coarse:
            if self._coarser is None:
                raise ValueError("these series have no coarser timeframe")
            self._coarse[timeframe] = self._coarser(timeframe)
        return self._coarse[timeframe]

    def on_clock(self, key: str, values: Callable[[], np.ndarray], closed: np.ndarray, kind: str) -> np.ndarray:
        """The coarse rows ``values()`` of the expression ``key`` read on this store's clock: each
        row the last coarse row that has closed (``closed``, engine/market/coarse.py)."""
        return on_base_clock(values(), closed)

    def call(self, key: str, name: str, *args) -> np.ndarray:
        """``FUNCTIONS[name](*args)`` over these rows; ``key`` names the call (a chunk store
        continues the call of that key from the previous chunk)."""
        return FUNCTIONS[name].impl(*args)

    def get(self, key: str, build: Callable[[], np.ndarray]) -> np.ndarray:
        self.used.add(key)
        if key in self.arrays:
            return self.arrays[key]
        # a constant broadcasts as a view: no (T, N) array of one number
        arr = np.broadcast_to(np.asarray(build()), self.shape)
        self.arrays[key] = arr
        return arr


class ChunkStore(FeatureStore):
    """The store of one chunk of consecutive rows (engine/cycle/chunks.py): its arrays are the
    chunk's rows, and each series-function call is computed by a stream (FunctionSpec.stream)
    kept in ``streams`` under the call's canonical key and fed every chunk in turn, so its rows
    are the whole run's bit for bit."""

    def __init__(self, base: Mapping[str, np.ndarray], shape: tuple[int, int], streams: dict, row0: int,
                 coarser: Callable[[str], tuple["FeatureStore | None", np.ndarray]] | None = None,
                 carried: dict | None = None):
        super().__init__(base, shape, coarser)
        self.streams = streams  # key -> [stream, rows it has consumed]; shared by a run's chunks
        self.row0 = row0
        # on() key -> the last coarse row closed before this chunk (shared by a run's chunks)
        self.carried = {} if carried is None else carried

    def on_clock(self, key: str, values: Callable[[], np.ndarray], closed: np.ndarray, kind: str) -> np.ndarray:
        """``closed``: per row of the chunk the coarse row of this chunk's completed coarse bars
        (engine/cycle/coarse_chunks.py), -1 for the last one closed before them, whose row is
        carried; ``values`` is not called when the chunk completed no coarse bar (its store is None)."""
        last = self.carried.get(key)
        if closed.size and closed[-1] >= 0:
            v = values()
            rows = v if last is None else np.concatenate([last[None], v])
            self.carried[key] = v[-1].copy()
        elif last is not None:
            rows = last[None]
        else:  # no coarse bar has closed yet in the run: what on_base_clock fills in
            fill = {NUM: np.nan, BOOL: False}.get(kind, "")
            return np.full((closed.size, self.shape[1]), fill)
        return on_base_clock(rows, closed if last is None else closed + 1)

    def call(self, key: str, name: str, *args) -> np.ndarray:
        spec = FUNCTIONS[name]
        entry = self.streams.get(key)
        if entry is None:
            if spec.stream is None:
                raise ValueError(f"{name}() has no chunked form (FunctionSpec.stream)")
            entry = self.streams[key] = [spec.stream(), 0]
        if entry[1] != self.row0:
            # a stream carries the rows before this chunk: one that missed a chunk (or starts
            # after row 0) would compute from the wrong history
            raise ValueError(f"{key} was computed up to row {entry[1]}, but this chunk starts at row {self.row0}")
        out = entry[0].step(*args)
        entry[1] = self.row0 + self.shape[0]
        return out


@dataclass
class Expr:
    type: str
    level: int
    key: str  # canonical text: identical computations share a key
    # CONST: value; SERIES: build(store) -> (T,N); CYCLE: make(store) -> fn(env, t)
    value: Any = None
    build: Callable[[FeatureStore], np.ndarray] | None = None
    make: Callable[[FeatureStore], Callable[[Mapping[str, Any], int], Any]] | None = None
    features: tuple[str, ...] = ()  # series keys this expression reads (for docs/trace)

    def series(self, store: FeatureStore) -> np.ndarray:
        """The (T, N) array of a SERIES (or CONST) expression."""
        if self.level == CONST:
            return store.get(self.key, lambda: np.asarray(self.value))
        return store.get(self.key, lambda: self.build(store))

    def bind(self, store: FeatureStore) -> Callable[[Mapping[str, Any], int], Any]:
        """A per-cycle closure ``fn(env, t)``; SERIES nodes read their precomputed row."""
        if self.level == CONST:
            v = self.value
            return lambda env, t: v
        if self.level == SERIES:
            arr = self.series(store)
            return lambda env, t: arr[t]
        return self.make(store)


_CMP = {
    ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater,
    ast.GtE: np.greater_equal, ast.Eq: np.equal, ast.NotEq: np.not_equal,
}
_CMP_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
             ast.In: "in", ast.NotIn: "not in"}
_BIN = {
    ast.Add: (np.add, "+"), ast.Sub: (np.subtract, "-"), ast.Mult: (np.multiply, "*"),
    ast.Div: (np.divide, "/"), ast.Mod: (np.mod, "%"), ast.Pow: (detmath.power, "**"),
    ast.FloorDiv: (np.floor_divide, "//"),
}
# Limits that keep a hostile or careless expression from costing time or memory at load.
_MAX_LEN = 2000  # characters of one expression
_MAX_DEPTH = 48  # nesting of the expression tree (the compiler recurses over it)
_MAX_NODES = 400  # syntax nodes in one expression
_MAX_STR = 200  # characters of a string literal
_MAX_LIST = 256  # items of the literal list after 'in'
_MAX_ABS = 1e15  # magnitude of a numeric literal or parameter
_MAX_EXPONENT = 64  # |y| in x ** y when y is known at load
_MAX_WINDOW = 1_000_000  # bars of a time-series window

# What an ops person wrote, in their words, for constructs the language does not have.
_FORBIDDEN = {
    "Lambda": "'lambda' is not allowed in a rule expression",
    "ListComp": "comprehensions are not allowed in a rule expression",
    "SetComp": "comprehensions are not allowed in a rule expression",
    "DictComp": "comprehensions are not allowed in a rule expression",
    "GeneratorExp": "generator expressions are not allowed in a rule expression",
    "Subscript": "indexing with [ ] is not allowed in a rule expression (use lag(x, n) for past values)",
    "Slice": "slices are not allowed in a rule expression",
    "JoinedStr": "f-strings are not allowed in a rule expression",
    "FormattedValue": "f-strings are not allowed in a rule expression",
    "NamedExpr": "assignment ':=' is not allowed in a rule expression",
    "Starred": "'*' unpacking is not allowed in a rule expression",
    "Await": "'await' is not allowed in a rule expression",
    "Yield": "'yield' is not allowed in a rule expression",
    "YieldFrom": "'yield' is not allowed in a rule expression",
    "Dict": "a {...} mapping is not allowed in a rule expression",
    "Set": "a {...} set is only allowed after 'in'",
    "List": "a [...] list is only allowed after 'in'",
    "Tuple": "a (a, b) tuple is only allowed after 'in'",
}
_BITWISE_HINT = {
    "BitAnd": "'&' is not the rule language's 'and'", "BitOr": "'|' is not the rule language's 'or'",
    "BitXor": "'^' is not allowed (for a power write '**')", "Invert": "'~' is not the rule language's 'not'",
    "LShift": "'<<' is not allowed", "RShift": "'>>' is not allowed", "MatMult": "'@' is not allowed",
}


def _type_name(t: str) -> str:
    return {NUM: "a number", BOOL: "a boolean (true/false)", STR: "a string"}[t]


class _Compiler:
    def __init__(self, src: str, ns: Namespace, where: Where):
        self.src, self.ns, self.where = src, ns, where
        self.on: str | None = None  # inside on(timeframe, ...): that timeframe

    # -- errors -----------------------------------------------------------------------
    def fail(self, node: ast.AST | None, message: str, expected: str | None = None) -> RuleError:
        line, col = self._position(getattr(node, "col_offset", None))
        return RuleError(self.where, message, source=self.src, line=line, col=col, expected=expected)

    def _position(self, byte_offset: int | None) -> tuple[int | None, int | None]:
        """(line, column), 1-based, in the expression as written, of an offset in the parsed
        text (which has its line breaks replaced by spaces, see ``compile``)."""
        if byte_offset is None:
            return None, None
        offset = len(self.src.encode()[:byte_offset].decode(errors="ignore"))
        before = self.src[:offset]
        line = before.count("\n") + 1
        return line, offset - (before.rfind("\n") + 1) + 1

    def need(self, e: Expr, want: str, node: ast.AST, what: str) -> None:
        if e.type != want:
            raise self.fail(node, f"{what} is {_type_name(e.type)}", expected=_type_name(want))

    # -- entry --------------------------------------------------------------------------
    def compile(self) -> Expr:
        if not isinstance(self.src, str) or not self.src.strip():
            raise RuleError(self.where, "empty expression", expected="an expression such as 'close > sma(close, 50)'")
        if len(self.src) > _MAX_LEN:
            raise RuleError(self.where, f"expression is {len(self.src)} characters long", expected=f"at most {_MAX_LEN}")
        self.src = self.src.strip().replace("\r\n", "\n").replace("\r", "\n")
        # A rule may span lines in YAML (``when: |``) without the parentheses Python would
        # need: parse it as one line (same offsets) and map positions back to its lines.
        flat = self.src.replace("\n", " ")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. SyntaxWarning for '1 is 1': we reject it below
                tree = ast.parse(flat, mode="eval")
        except SyntaxError as exc:
            line, col = self._position(None if exc.offset is None else len(flat[: exc.offset - 1].encode()))
            raise RuleError(self.where, f"syntax error: {exc.msg}", source=self.src, line=line, col=col,
                            expected="a Python-style expression such as 'close > sma(close, 50)'") from None
        except (RecursionError, MemoryError, ValueError):
            raise RuleError(self.where, "the expression is nested too deeply to parse",
                            expected=f"at most {_MAX_DEPTH} levels of nesting") from None
        self._check_size(tree.body)
        if self.ns.timeframe is None:
            return self.visit(tree.body)
        # a file with `timeframe:` reads every expression on those bars, as if wrapped in on()
        self.on = self.ns.timeframe
        inner = self.visit(tree.body)
        self.on = None
        return self._on_clock(inner, self.ns.timeframe, tree.body, "the file's timeframe")

    def _check_size(self, root: ast.AST) -> None:
        """Reject huge or deeply nested trees before the recursive visit (iteratively)."""
        count, stack = 0, [(root, 1, root)]
        while stack:
            node, depth, located = stack.pop()
            located = node if hasattr(node, "lineno") else located
            count += 1
            if depth > _MAX_DEPTH:
                raise self.fail(located, f"the expression is nested more than {_MAX_DEPTH} levels deep",
                                expected="a shorter expression (split it into several rules)")
            stack.extend((c, depth + 1, located) for c in ast.iter_child_nodes(node))
        if count > _MAX_NODES:
            raise self.fail(root, f"the expression has {count} parts",
                            expected=f"at most {_MAX_NODES} (split it into several rules)")

    def visit(self, node: ast.AST) -> Expr:
        kind = type(node).__name__
        if kind in _FORBIDDEN:
            raise self.fail(node, _FORBIDDEN[kind],
                            expected="arithmetic, comparisons, and/or/not, 'x if c else y', function calls, names")
        method = getattr(self, "v_" + kind, None)
        if method is None:
            raise self.fail(node, f"'{type(node).__name__}' is not allowed in a rule expression",
                            expected="arithmetic, comparisons, and/or/not, 'x if c else y', function calls, names")
        return method(node)

    # -- leaves -------------------------------------------------------------------------
    def v_Constant(self, node: ast.Constant) -> Expr:
        v = node.value
        if isinstance(v, bool):
            return Expr(BOOL, CONST, repr(v), value=v)
        if isinstance(v, (int, float)):
            f = self._number(node, v, "number")
            return Expr(NUM, CONST, repr(f), value=f)
        if isinstance(v, str):
            if len(v) > _MAX_STR:
                raise self.fail(node, f"string literal is {len(v)} characters long", expected=f"at most {_MAX_STR}")
            return Expr(STR, CONST, repr(v), value=v)
        shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
        raise self.fail(node, f"literal {shown} is not allowed", expected="a number, true/false or a quoted string")

    def _number(self, node: ast.AST, v: Any, what: str) -> float:
        """A finite float of bounded size (a 400-digit literal would overflow or cost time)."""
        try:
            f = float(v)
        except OverflowError:
            f = float("inf")
        if not np.isfinite(f) or abs(f) > _MAX_ABS:
            text = str(v) if len(str(v)) <= 24 else str(v)[:21] + "..."
            raise self.fail(node, f"{what} {text} is out of range", expected=f"a finite number of magnitude <= {_MAX_ABS:g}")
        return f

    def v_Name(self, node: ast.Name) -> Expr:
        name = node.id
        if name.startswith("_"):
            raise self.fail(node, f"names starting with '_' are not allowed ('{name}')", expected="a market column, feature or params.x")
        if name in ("True", "False", "true", "false"):
            v = name.lower() == "true"
            return Expr(BOOL, CONST, repr(v), value=v)
        if name in self.ns.series:
            if self.on is not None and name in BASE_CLOCK_ONLY:
                raise self.fail(node, f"'{name}' is a label of the base bars and cannot be read on {self.on} bars",
                                expected=f"market columns and features inside on(\"{self.on}\", ...)")
            return self._series_name(name, self.ns.series[name])
        if name in self.ns.cycle:
            return self._cycle_name(name, self.ns.cycle[name])
        if name in DOTTED_ROOTS:
            raise self.fail(node, f"'{name}' needs a field, as in '{name}.x'")
        raise self._unknown(node, name)

    def v_Attribute(self, node: ast.Attribute) -> Expr:
        if not isinstance(node.value, ast.Name) or node.value.id not in DOTTED_ROOTS:
            raise self.fail(node, f"attribute access '.{node.attr}' is not allowed here",
                            expected="a single dotted name: " + ", ".join(f"{r}.x" for r in DOTTED_ROOTS))
        root, attr = node.value.id, node.attr
        if attr.startswith("_"):
            raise self.fail(node, f"'{root}.{attr}' is not allowed", expected="a public field name")
        dotted = f"{root}.{attr}"
        if root == "params":
            if attr not in self.ns.params:
                raise self._unknown(node, dotted, pool=[f"params.{p}" for p in self.ns.params])
            return self._param(node, attr, self.ns.params[attr])
        if dotted in self.ns.cycle:
            return self._cycle_name(dotted, self.ns.cycle[dotted])
        raise self._unknown(node, dotted)

    def _unknown(self, node: ast.AST, name: str, pool: list[str] | None = None) -> RuleError:
        pool = pool if pool is not None else self.ns.all_names()
        close = difflib.get_close_matches(name, pool, n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        return self.fail(node, f"unknown name '{name}'{hint}",
                         expected="one of: " + ", ".join(pool) if len(pool) <= 40 else None)

    def _param(self, node: ast.AST, name: str, v: Any) -> Expr:
        key = f"params.{name}"
        if isinstance(v, bool):
            return Expr(BOOL, CONST, repr(v), value=v)
        if isinstance(v, (int, float)):
            f = self._number(node, v, f"'{key}' =")
            return Expr(NUM, CONST, repr(f), value=f)
        if isinstance(v, str):
            return Expr(STR, CONST, repr(v), value=v)
        kind = "mapping" if isinstance(v, Mapping) else "list" if isinstance(v, (list, tuple)) else type(v).__name__
        shown = repr(dict(v) if isinstance(v, Mapping) else v)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise self.fail(node, f"'{key}' is a {kind} ({shown}) and cannot be used in an expression",
                        expected="a number, boolean or string parameter")

    def _series_name(self, name: str, typ: str) -> Expr:
        return Expr(typ, SERIES, name, build=lambda store, n=name: store.arrays[n], features=(name,))

    def _cycle_name(self, name: str, typ: str) -> Expr:
        def make(store, n=name):
            return lambda env, t: env[n]
        return Expr(typ, CYCLE, name, make=make)

    # -- operators ------------------------------------------------------------------------
    def v_UnaryOp(self, node: ast.UnaryOp) -> Expr:
        e = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            self.need(e, BOOL, node.operand, "the operand of 'not'")
            return self._combine([e], f"(not {e.key})", BOOL, np.logical_not)
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            self.need(e, NUM, node.operand, "the operand of unary minus")
            if isinstance(node.op, ast.UAdd):
                return e
            return self._combine([e], f"(-{e.key})", NUM, np.negative)
        raise self.fail(node, _BITWISE_HINT.get(type(node.op).__name__, "this operator is not allowed"),
                        expected="not x")

    def v_BinOp(self, node: ast.BinOp) -> Expr:
        if type(node.op) not in _BIN:
            op = type(node.op).__name__
            expected = ("'and'" if op == "BitAnd" else "'or'" if op == "BitOr" else "one of + - * / % ** //")
            raise self.fail(node, _BITWISE_HINT.get(op, f"operator '{op}' is not allowed"), expected=expected)
        fn, sym = _BIN[type(node.op)]
        left, right = self.visit(node.left), self.visit(node.right)
        self.need(left, NUM, node.left, f"the left side of '{sym}'")
        self.need(right, NUM, node.right, f"the right side of '{sym}'")
        if sym == "**" and right.level == CONST and abs(right.value) > _MAX_EXPONENT:
            raise self.fail(node.right, f"exponent {right.value:g} is too large",
                            expected=f"an exponent between -{_MAX_EXPONENT} and {_MAX_EXPONENT}")

        def safe(a, b, fn=fn):
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return fn(a, b)
        return self._combine([left, right], f"({left.key} {sym} {right.key})", NUM, safe)

    def v_BoolOp(self, node: ast.BoolOp) -> Expr:
        parts = [self.visit(v) for v in node.values]
        word = "and" if isinstance(node.op, ast.And) else "or"
        for v, p in zip(node.values, parts):
            self.need(p, BOOL, v, f"an operand of '{word}'")
        fn = np.logical_and if word == "and" else np.logical_or

        def reduce(*xs, fn=fn):
            out = xs[0]
            for x in xs[1:]:
                out = fn(out, x)
            return out
        key = "(" + f" {word} ".join(p.key for p in parts) + ")"
        return self._combine(parts, key, BOOL, reduce)

    def v_Compare(self, node: ast.Compare) -> Expr:
        terms = [node.left, *node.comparators]
        results = []
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                results.append(self._membership(left, op, right_node, node))
                left = None
                continue
            if type(op) not in _CMP:
                raise self.fail(node, "'is' / 'is not' are not allowed", expected="== or !=")
            if left is None:
                raise self.fail(right_node, "'in' cannot be chained with another comparison",
                                expected="'(x in [...]) and (...)'")
            right = self.visit(right_node)
            sym = _CMP_TEXT[type(op)]
            if left.type == STR or right.type == STR:
                if type(op) not in (ast.Eq, ast.NotEq):
                    raise self.fail(node, f"strings can only be compared with == or !=, not '{sym}'")
                if left.type != right.type:
                    raise self.fail(right_node, f"'{sym}' compares {_type_name(left.type)} with {_type_name(right.type)}",
                                    expected="both sides strings")
                self._check_label(left, right, right_node)
                self._check_label(right, left, terms[0])
            elif left.type == BOOL and right.type == BOOL and type(op) in (ast.Eq, ast.NotEq):
                pass
            else:
                self.need(left, NUM, terms[0], f"the left side of '{sym}'")
                self.need(right, NUM, right_node, f"the right side of '{sym}'")
            results.append(self._combine([left, right], f"({left.key} {sym} {right.key})", BOOL, _CMP[type(op)]))
            left = right
        if len(results) == 1:
            return results[0]
        return self._combine(results, "(" + " and ".join(r.key for r in results) + ")", BOOL,
                             lambda *xs: np.logical_and.reduce(np.broadcast_arrays(*xs)))

    def _check_label(self, name_side: Expr, const_side: Expr, node: ast.AST) -> None:
        """``regime == "bul"`` is a typo that would silently never match: reject it."""
        if name_side.key == "regime" and const_side.level == CONST and self.ns.regimes:
            if const_side.value not in self.ns.regimes:
                raise self.fail(node, f"regime {const_side.value!r} is not defined by the regime file",
                                expected="one of " + ", ".join(self.ns.regimes))

    def _membership(self, left: Expr, op: ast.cmpop, right_node: ast.AST, node: ast.AST) -> Expr:
        if not isinstance(right_node, (ast.List, ast.Tuple, ast.Set)):
            raise self.fail(right_node, "the right side of 'in' must be a literal list", expected="e.g. [\"meme\", \"AI\"]")
        if len(right_node.elts) > _MAX_LIST:
            raise self.fail(right_node, f"the list after 'in' has {len(right_node.elts)} items", expected=f"at most {_MAX_LIST}")
        items = [self.visit(e) for e in right_node.elts]
        for it, n in zip(items, right_node.elts):
            if it.level != CONST:
                raise self.fail(n, "list items after 'in' must be literals")
            if it.type != left.type:
                raise self.fail(n, f"list item is {_type_name(it.type)} but the left side is {_type_name(left.type)}")
            self._check_label(left, it, n)
        values = [it.value for it in items]
        negate = isinstance(op, ast.NotIn)

        def member(x, values=values, negate=negate):
            r = np.isin(x, values)
            return ~r if negate else r
        key = f"({left.key} {'not in' if negate else 'in'} {sorted(map(repr, values))})"
        return self._combine([left], key, BOOL, member)

    def v_IfExp(self, node: ast.IfExp) -> Expr:
        cond, a, b = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        self.need(cond, BOOL, node.test, "the condition of 'if ... else'")
        if a.type != b.type:
            raise self.fail(node.orelse, f"the branches of 'if ... else' differ: {_type_name(a.type)} and {_type_name(b.type)}",
                            expected="both branches of the same type")
        return self._combine([cond, a, b], f"({a.key} if {cond.key} else {b.key})", a.type, np.where)

    # -- calls ------------------------------------------------------------------------------
    def v_Call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only registered functions can be called by name", expected="e.g. sma(close, 50)")
        name = node.func.id
        if name.startswith("_"):
            raise self.fail(node, f"names starting with '_' are not allowed ('{name}')", expected="a registered function")
        if name == "on":
            return self._on_call(node)
        spec = FUNCTIONS.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(FUNCTIONS), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise self.fail(node, f"unknown function '{name}'{hint}", expected="one of " + ", ".join(sorted(FUNCTIONS)))
        args = self._bind_args(spec, node)
        if spec.kind == "series":
            return self._series_call(spec, args, node)
        return self._elementwise_call(spec, args, node)

    def _on_call(self, node: ast.Call) -> Expr:
        """``on("1d", expr)``: ``expr`` over coarser bars built from the base bars, read at each
        base bar from the last coarse bar that has closed (engine/market/coarse.py)."""
        if node.keywords or len(node.args) != 2:
            raise self.fail(node, f"on() takes 2 arguments, {len(node.args) + len(node.keywords)} given",
                            expected=ON_SIGNATURE)
        tf_node, inner_node = node.args
        if not (isinstance(tf_node, ast.Constant) and isinstance(tf_node.value, str)):
            raise self.fail(tf_node, "the timeframe of on() must be a quoted literal", expected=ON_SIGNATURE)
        tf = tf_node.value
        if tf not in TIMEFRAME_MS:
            close = difflib.get_close_matches(tf, list(TIMEFRAME_MS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self.fail(tf_node, f"unknown timeframe '{tf}'{hint}", expected="one of " + ", ".join(TIMEFRAME_MS))
        if self.on is not None:
            raise self.fail(node, f"on() inside expressions that already read {self.on} bars",
                            expected="one timeframe per expression (on() is not nested)")
        self.on = tf
        inner = self.visit(inner_node)
        self.on = None
        return self._on_clock(inner, tf, node, "on()", tf_node)

    def _on_clock(self, inner: Expr, tf: str, node: ast.AST, what: str, tf_node: ast.AST | None = None) -> Expr:
        if inner.level == CYCLE:
            raise self.fail(node, f"{what} reads {tf} bars, but the expression changes with the portfolio or the "
                                  "order each cycle", expected="an expression of market columns and features")
        if inner.level == CONST:
            if what == "on()":
                raise self.fail(node, "on() got only constants", expected="a time series argument such as close")
            return inner
        # the base bars' timeframe is known once the market is: check it then, pointing here
        where, src = self.where, self.src
        line, col = self._position(getattr(tf_node or node, "col_offset", None))

        key = f"on({tf!r}, {inner.key})"

        def build(store, inner=inner, tf=tf, key=key):
            try:
                coarse, closed = store.coarse(tf)
            except ValueError as exc:
                raise RuleError(where, f"{what} cannot read {tf} bars: {exc}", source=src, line=line, col=col,
                                expected="a timeframe coarser than the data's, a whole multiple of it") from None
            return store.on_clock(key, lambda: np.asarray(inner.series(coarse)), closed, inner.type)
        return Expr(inner.type, SERIES, key, build=build, features=(key,))

    def _bind_args(self, spec: FunctionSpec, node: ast.Call) -> list[tuple[Expr, ast.AST]]:
        sig = signature(spec)
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.fail(a, "'*' unpacking is not allowed in a rule expression", expected=sig)
        for kw in node.keywords:
            if kw.arg is None:
                raise self.fail(kw.value, "'**' unpacking is not allowed in a rule expression", expected=sig)
        given: list[tuple[Expr, ast.AST] | None] = [(self.visit(a), a) for a in node.args]
        if spec.variadic:
            if node.keywords:
                raise self.fail(node, f"{spec.name}() takes no keyword arguments")
            if len(given) < 2:
                raise self.fail(node, f"{spec.name}() takes at least 2 arguments, {len(given)} given", expected=sig)
            return given  # type: ignore[return-value]
        if len(given) > len(spec.params):
            raise self.fail(node, f"{spec.name}() takes at most {len(spec.params)} arguments, {len(given)} given", expected=sig)
        given += [None] * (len(spec.params) - len(given))
        names = [p.name for p in spec.params]
        for kw in node.keywords:
            if kw.arg not in names:
                raise self.fail(kw.value, f"{spec.name}() has no argument '{kw.arg}'", expected=sig)
            i = names.index(kw.arg)
            if given[i] is not None:
                raise self.fail(kw.value, f"{spec.name}() got argument '{kw.arg}' twice", expected=sig)
            given[i] = (self.visit(kw.value), kw.value)
        out = []
        for p, g in zip(spec.params, given):
            if g is None:
                if p.default is None:
                    raise self.fail(node, f"{spec.name}() is missing argument '{p.name}'", expected=sig)
                v = p.default
                g = (Expr(NUM, CONST, repr(float(v)), value=v), node)
            out.append(g)
        return out

    def _series_call(self, spec: FunctionSpec, args: list[tuple[Expr, ast.AST]], node: ast.Call) -> Expr:
        level = SERIES
        statics: list[Any] = []
        series_args: list[tuple[int, Expr]] = []
        for i, (p, (e, n)) in enumerate(zip(spec.params, args)):
            if p.type == "window":
                if e.level != CONST or e.type != NUM:
                    raise self.fail(n, f"window '{p.name}' of {spec.name}() must be a fixed number", expected="a positive whole number of bars (or params.x)")
                v = e.value
                if float(v) != int(v) or int(v) < 1:
                    raise self.fail(n, f"window '{p.name}' of {spec.name}() is {v:g}", expected="a positive whole number of bars")
                if int(v) > _MAX_WINDOW:
                    raise self.fail(n, f"window '{p.name}' of {spec.name}() is {v:g} bars",
                                    expected=f"at most {_MAX_WINDOW:,} bars")
                statics.append(int(v))
            elif p.type == "number":
                if e.level != CONST or e.type != NUM:
                    raise self.fail(n, f"argument '{p.name}' of {spec.name}() must be a fixed number")
                statics.append(float(e.value))
            else:
                want = BOOL if p.type == "bool_series" else NUM
                self.need(e, want, n, f"argument '{p.name}' of {spec.name}()")
                if e.level == CYCLE:
                    raise self.fail(n, f"{spec.name}() needs a time series (market data or a feature of it), "
                                       f"but '{ast.unparse(n)}' changes with the portfolio each cycle",
                                    expected="an expression of market columns")
                statics.append(None)
                series_args.append((i, e))
        key = f"{spec.name}({', '.join(a.key if s is None else repr(s) for (a, _), s in zip(args, statics))})"
        rtype = BOOL if spec.returns == "bool" else NUM
        if all(e.level == CONST for _, e in series_args):
            raise self.fail(node, f"{spec.name}() got only constants", expected="a time series argument such as close")
        self._probe(spec, statics, series_args, args, node)

        def build(store, statics=statics, series_args=series_args):
            vals = list(statics)
            for i, e in series_args:
                arr = e.series(store)
                vals[i] = np.ascontiguousarray(arr, dtype=bool if e.type == BOOL else np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                return store.call(key, spec.name, *vals)  # whole arrays, or a chunk's stream
        feats = tuple(sorted({f for e, _ in args for f in e.features} | {key}))
        return Expr(rtype, level, key, build=build, features=feats)

    def _probe(self, spec: FunctionSpec, statics: list, series_args: list, args: list, node: ast.Call) -> None:
        """Run the function once on a tiny panel so the library's own argument checks (a
        window it cannot use, a bound out of range) fail at load, pointing at the call."""
        vals = list(statics)
        for i, e in series_args:
            vals[i] = np.zeros((4, 1), dtype=bool if e.type == BOOL else np.float64)
        try:
            with np.errstate(all="ignore"):
                spec.impl(*vals)
        except (ValueError, TypeError) as exc:
            msg = str(exc)
            bad = next((n for (e, n), s in zip(args, statics) if s is not None and repr(s) in msg), node)
            raise self.fail(bad, msg.split("; expected")[0],
                            expected=msg.split("; expected ", 1)[1] if "; expected " in msg else signature(spec)) from None

    def _elementwise_call(self, spec: FunctionSpec, args: list[tuple[Expr, ast.AST]], node: ast.Call) -> Expr:
        params = list(spec.params)
        # A registry that types element-wise arguments as "series" reserves "number" for
        # arguments that must be known at load (round's ndigits).
        typed = any(p.type == "series" for p in params)
        for i, (e, n) in enumerate(args):
            p = params[min(i, len(params) - 1)]
            self.need(e, NUM, n, f"argument '{p.name}' of {spec.name}()")
            if typed and p.type in ("number", "window") and e.level != CONST:
                raise self.fail(n, f"argument '{p.name}' of {spec.name}() must be a fixed number",
                                expected="a number or params.x")
        exprs = [e for e, _ in args]
        key = f"{spec.name}({', '.join(e.key for e in exprs)})"
        # a variadic impl (min, max) folds all its arguments itself, left to right
        return self._combine(exprs, key, NUM, spec.impl)

    # -- combining ------------------------------------------------------------------------
    def _combine(self, parts: list[Expr], key: str, typ: str, fn: Callable) -> Expr:
        level = max(p.level for p in parts)
        feats = tuple(sorted({f for p in parts for f in p.features}))
        if level == CONST:
            try:
                with np.errstate(all="ignore"):
                    v = fn(*[p.value for p in parts])
            except (ValueError, TypeError, ArithmeticError) as exc:
                raise RuleError(self.where, f"cannot compute {key}: {exc}", source=self.src, line=1, col=1) from None
            v = v.item() if isinstance(v, np.generic) else v
            if isinstance(v, np.ndarray):
                v = v.item()
            return Expr(typ, CONST, repr(v), value=v)
        if level == SERIES:
            def build(store, parts=parts):
                arrays = [p.series(store) for p in parts]
                with np.errstate(all="ignore"):
                    if all(a.ndim == 2 and a.strides[0] == 0 for a in arrays):
                        # every input is the same row on every bar (theme, min_notional,
                        # constants): compute that row once; FeatureStore broadcasts it back
                        return fn(*[a[:1] for a in arrays])
                    return fn(*arrays)
            return Expr(typ, SERIES, key, build=build, features=feats)

        def make(store, parts=parts):
            fns = [p.bind(store) for p in parts]
            if len(fns) == 1:
                f0 = fns[0]
                return lambda env, t: fn(f0(env, t))
            if len(fns) == 2:
                f0, f1 = fns
                return lambda env, t: fn(f0(env, t), f1(env, t))
            return lambda env, t: fn(*[f(env, t) for f in fns])
        return Expr(typ, CYCLE, key, make=make, features=feats)


def compile_expression(src: Any, ns: Namespace, where: Where, *, want: str | None = None) -> Expr:
    """Parse, check and compile one expression; ``want`` is the type the caller needs."""
    if isinstance(src, bool):
        src = "true" if src else "false"
    elif isinstance(src, (int, float)):
        src = repr(src)
    if not isinstance(src, str):
        raise RuleError(where, f"expected an expression string, found {type(src).__name__} {src!r}")
    comp = _Compiler(src, ns, where)
    expr = comp.compile()
    if want is not None and expr.type != want:
        raise RuleError(where, f"the expression is {_type_name(expr.type)}", expected=_type_name(want),
                        source=comp.src, line=1, col=1)
    return expr
