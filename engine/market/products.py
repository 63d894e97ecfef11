"""Product facts from one declared table (rules/products.yaml): themes, increments, minimum notional.

Every mode reads the same table: the backtest applies it to the market it loaded (the sample
market or files), dry_run / paper / live to the exchange's market list. That is what makes a
theme rule (``no_stablecoins``, a meme cap, the regime index's ``exclude_themes``) act the same
in a backtest and live.

How the table and a source's own facts combine (one rule for every mode, docs/data.md):
- theme: the table's only. A product whose base (or market) the table does not list gets
  ``other``, and the caller warns, naming it.
- price / size increment and minimum notional: the stricter of the source's and the table's
  (the coarser increment, the higher minimum), so an order the table allows is never one the
  exchange refuses. A source that *states* its facts (the exchange, the sample generator) and
  disagrees with the table is reported (WARNING); one that only guesses them (files) is not.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from engine import run_warnings, yamlfast
from engine.errors import UserError
from engine.market.data import SymbolInfo
from engine.validators import validator

UNDECLARED = "other"
REL_AGREE = 1e-9  # increments within this relative distance agree (decimal text vs computed powers of ten)
# A theme name (L1, DeFi, meme, exchange_token): the one pattern the table and theme caps share.
THEME_RE = r"^[A-Za-z][A-Za-z0-9_]{0,39}$"
_NAME = THEME_RE
_MARKET = {"type": "dict", "schema": {
    "theme": {"type": "string", "regex": _NAME},
    "price_increment": {"type": "number", "min": 1e-18, "max": 1e9},
    "size_increment": {"type": "number", "min": 1e-18, "max": 1e9},
    "min_notional": {"type": "number", "min": 0, "max": 1e12},
}}
SCHEMA: dict = {
    "kind": {"type": "string", "required": True, "allowed": ["products"]},
    "themes": {"type": "dict", "keysrules": {"type": "string", "regex": r"^[A-Z0-9]{1,20}$"},
               "valuesrules": {"type": "string", "regex": _NAME}},
    "markets": {"type": "dict", "keysrules": {"type": "string", "regex": r"^[A-Z0-9]{1,20}/[A-Z0-9]{2,10}$"},
                "valuesrules": _MARKET},
}
_EXPECTED = {
    "kind": "kind: products",
    "themes": "a mapping of base currency (e.g. BTC) to theme name (letters, digits, _)",
    "markets": "a mapping of ccxt symbol (e.g. BTC/USDC) to {theme, price_increment, size_increment, min_notional}",
}


@dataclass(frozen=True)
class ProductFacts:
    """The declared table, parsed and checked. ``source`` names it in messages."""

    themes: Mapping[str, str]
    markets: Mapping[str, Mapping[str, Any]]
    source: str
    sha256: str

    @classmethod
    def empty(cls, source: str = "no product table") -> "ProductFacts":
        return cls({}, {}, source, "")

    def theme_of(self, symbol: str) -> str | None:
        """The declared theme of ``symbol`` (a market's own entry first, then its base), None if undeclared."""
        m = self.markets.get(symbol) or {}
        if "theme" in m:
            return m["theme"]
        return self.themes.get(symbol.split("/")[0].upper())


@dataclass(frozen=True)
class Applied:
    """A market's facts after the table: the infos, the products with no declared theme, and
    every disagreement between a stating source and the table (each already resolved)."""

    info: tuple[SymbolInfo, ...]
    undeclared: tuple[str, ...]
    disagreements: tuple[str, ...]


def _table_location(cfg: Mapping[str, Any]) -> tuple[Path | None, Path] | None:
    """(the rule folder it is looked up in, or None for an absolute name; its path); None: no table."""
    from engine.paths import rule_folders

    name = cfg.get("product_facts", "products.yaml")
    if name in (None, "", "none", "null"):
        return None
    p = Path(str(name))
    # under rules_dir like a rule file: the project's table, else the built-in one
    return (None, p) if p.is_absolute() else rule_folders(cfg.get("rules_dir", "rules")).find(p)


def table_path(cfg: Mapping[str, Any]) -> Path | None:
    """The table the config selects (``product_facts``: under ``rules_dir`` unless absolute); None: no table."""
    where = _table_location(cfg)
    return None if where is None else where[1]


def load_for(cfg: Mapping[str, Any]) -> ProductFacts:
    from engine.paths import leaves_root

    where = _table_location(cfg)
    if where is None:
        return ProductFacts.empty()
    root, path = where
    if root is not None:
        # like a rule file: a relative name (or a link) must not lead the loader out of rules_dir
        outside = leaves_root(root, path)
        if outside is not None:
            raise UserError(f"product_facts: the product table {cfg.get('product_facts')!r} leads outside the rules "
                            f"folder {root} (to {outside}); expected a path inside it (e.g. products.yaml), or an "
                            f"absolute path")
    return load_product_facts(path)


_loaded: dict[tuple[str, str], ProductFacts] = {}  # (path, sha256 of its bytes) -> the parsed table


def load_product_facts(path: Path | str) -> ProductFacts:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"product_facts: cannot read {path} ({e.strerror or e}); expected the product table "
                        "(rules/products.yaml), or product_facts=null for none") from None
    # the config check reads the table on every check (a sweep checks hundreds of configs): parse once
    key = (str(path), hashlib.sha256(raw).hexdigest())
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = _parse(path, raw)
    return _loaded[key]


def _parse(path: Path, raw: bytes) -> ProductFacts:
    try:
        data = yamlfast.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file; expected the YAML product table") from None
    except yaml.YAMLError as e:
        # where and what, never the line itself: the file may be anything the config points at
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise UserError(f"{path}{at}: not a YAML product table ({getattr(e, 'problem', None) or type(e).__name__}); "
                        f"expected a mapping with kind: products, themes, markets") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: found {type(data).__name__}, expected a mapping with kind: products, themes, markets")
    if data.get("kind") != "products":
        # checked before any value is quoted: a file that is no product table is not echoed
        raise UserError(f"{path}: no 'kind: products' at the top; expected the product table (rules/products.yaml)")
    v = validator("products", SCHEMA)
    if not v.validate(data):
        raise UserError(f"{path}: " + "; ".join(_problems(v.errors, data)))
    return ProductFacts(dict(data.get("themes") or {}), {k: dict(m) for k, m in (data.get("markets") or {}).items()},
                        str(path), hashlib.sha256(raw).hexdigest())


def _problems(errors: Mapping, data: Mapping, prefix: str = "") -> list[str]:
    out = []
    for key, errs in sorted(errors.items(), key=lambda kv: str(kv[0])):
        where = f"{prefix}{key}"
        for e in errs:
            if isinstance(e, dict):
                sub = data.get(key) if isinstance(data, Mapping) else None
                out += _problems(e, sub if isinstance(sub, Mapping) else {}, where + ".")
            else:
                found = data.get(key, "nothing") if isinstance(data, Mapping) else "?"
                hint = _EXPECTED.get(where.split(".")[0], "")
                out.append(f"{where}: {e} (found {found!r}{'; expected ' + hint if hint else ''})")
    return out


def apply(facts: ProductFacts, info: tuple[SymbolInfo, ...], stated: bool) -> Applied:
    """``info`` with the table's themes and the stricter increments / minimum notional.

    ``stated``: the source states its increments (exchange, sample generator) rather than
    guessing them (files); only then is a disagreement reported."""
    out, undeclared, notes = [], [], []
    for i in info:
        theme = facts.theme_of(i.symbol)
        if theme is None:
            undeclared.append(i.symbol)
            theme = UNDECLARED
        m = facts.markets.get(i.symbol) or {}
        vals = {}
        for name in ("price_increment", "size_increment", "min_notional"):
            mine = float(getattr(i, name))
            if name not in m:
                vals[name] = mine
                continue
            table = float(m[name])
            if abs(mine - table) <= REL_AGREE * max(abs(mine), abs(table)):
                vals[name] = mine  # the same fact written two ways (10.0**-5 vs 1e-05): the source's bits stay
                continue
            vals[name] = max(mine, table)
            if stated:
                notes.append(f"{i.symbol} {name}: source {mine!r}, {Path(facts.source).name} {table!r}; "
                             f"using {vals[name]!r} (the stricter)")
        out.append(dataclasses.replace(i, theme=theme, **vals))
    return Applied(tuple(out), tuple(undeclared), tuple(notes))


def warn(log, applied: Applied, facts: ProductFacts, where: str) -> None:
    """The start-up WARNINGs: products with no declared theme, and resolved disagreements."""
    if applied.undeclared:
        names = list(applied.undeclared)
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        run_warnings.warn(log, "undeclared_theme", f"{where}: {len(names)} traded product(s) have no declared theme "
                          f"in {facts.source} and count as {UNDECLARED!r}: {shown}")
    for n in applied.disagreements[:20]:
        run_warnings.warn(log, "product_facts_disagree", f"{where}: product facts disagree: {n}")
    if len(applied.disagreements) > 20:
        run_warnings.warn(log, "product_facts_disagree",
                          f"{where}: {len(applied.disagreements) - 20} more product-fact disagreements")
