"""Answer "why was SYMBOL (not) bought or sold at TIME?" from a run's output directory.

    python run.py mode=explain explain.run_dir=outputs/... explain.symbol=SOL/USDC explain.time=2024-11-02T14:00
    python run.py mode=explain mode.state=paper explain.symbol=SOL/USDC explain.time=...   # a paper account

Reads ``trace.npz`` (every rule's verdict per symbol and bar, written and read by
engine/trace.py) and ``results.json`` (fills, the run's config), reloads the rule
files the run used (for ids, scopes and ``why`` messages), and walks the stages of that cycle:
regime, universe filters and ranking, exits, halts, entries, vetoes, caps, guards, outcome.
Times are bar opens (UTC); a decision at bar t fills at bar t+1's open.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from engine.paths import leaves_root
from engine.errors import UserError
from engine.market.data import iso_utc
from engine.rules.errors import RuleError
from engine.rules.loader import Rule, RuleSet
from engine.trace import BLOCK, BUY, CANDIDATE, CLIP, CYCLE_TRUE, LOCK, SELL, Trace, TraceError, series_key


def parse_time(text: str) -> int:
    """ISO-8601 UTC (``2024-11-02T14:00``, ``...Z``, a date) -> epoch ms."""
    try:
        return int(np.datetime64(str(text).strip().replace("Z", "").replace(" ", "T"), "ms").astype(np.int64))
    except ValueError:
        raise UserError(f"explain.time is {text!r}; expected an ISO time such as 2024-11-02T14:00 (UTC)") from None


def _fill(template: str, params: Mapping[str, Any], value: str = "") -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name == "value":
            return value or "?"
        if name.startswith("params.") and name[7:] in params:
            return str(params[name[7:]])
        return m.group(0)
    return re.sub(r"\{([^}]*)\}", sub, template or "")


def _load_rules(results: Mapping[str, Any]) -> tuple[RuleSet | None, str]:
    """The rule set the run used, rebuilt from its saved config; a note if that is not possible."""
    from engine.modes.setup import load_rules

    cfg = (results.get("run") or {}).get("config") or {}
    if not cfg:
        return None, "the run's config is not in results.json: rule messages are not shown"
    try:
        rules = load_rules(cfg)
    except (RuleError, UserError, OSError) as exc:
        return None, f"the rule files could not be reloaded ({str(exc).splitlines()[0]}): rule messages are not shown"
    saved = (results.get("run") or {}).get("rule_files") or {}
    from engine.paths import rule_file

    changed = []
    for label, digest in saved.items():
        path = rule_file(cfg.get("rules_dir", "rules"), label.removeprefix("rules/"))
        if path.exists() and hashlib.sha256(path.read_text().encode()).hexdigest() != digest:
            changed.append(label)
    note = f"note: {', '.join(changed)} changed since the run; messages come from the current files" if changed else ""
    return rules, note


def _holding(results: Mapping[str, Any], symbol: str, time_ms: int) -> float:
    """Quantity held when the cycle at ``time_ms`` decided (fills up to that bar's open)."""
    qty = 0.0
    for f in results.get("trades") or []:
        if f.get("symbol") != symbol or parse_time(f["time"]) > time_ms:
            continue
        qty += f["qty"] if f["side"] == "buy" else -f["qty"]
    return qty if qty > 1e-12 else 0.0


def _strategy_at(results: Mapping[str, Any], symbol: str, time_ms: int, side: str = "buy") -> str | None:
    """A book run: the strategy of the last ``side`` fill of ``symbol`` at or before ``time_ms``
    (the strategy holding it, or the one whose order the cycle before sent)."""
    name = None
    for f in results.get("trades") or []:
        if f.get("symbol") == symbol and f.get("side") == side and parse_time(f["time"]) <= time_ms:
            name = f.get("strategy") or name
    return name


def _scope_note(rule: Rule | None, regime: str) -> str | None:
    if rule is not None and rule.regimes and regime not in rule.regimes:
        return f"does not apply in {regime} (only in {', '.join(rule.regimes)})"
    return None


class _Answer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def head(self, text: str) -> None:
        self.lines.append(text)

    def item(self, label: str, verdict: str, why: str = "") -> None:
        self.lines.append((f"  {label:<22} {verdict}" + (f"  - {why}" if why else "")).rstrip())

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _rules_of(rules: RuleSet | None, stage: str) -> list[Rule]:
    if rules is None:
        return []
    return {
        "universe": rules.universe.filters, "entry": rules.strategy.entries, "exit": rules.strategy.exits,
        "veto": rules.risk.vetoes, "guard": rules.execution.guards,
    }[stage]


def _stage_ids(tr: Trace, rules: RuleSet | None, stage: str) -> list[tuple[str, Rule | None]]:
    """(rule id, rule) of a stage: from the rule files, else from what the trace recorded."""
    if rules is not None:
        return [(r.id, r) for r in _rules_of(rules, stage)]
    ids = tr.series_ids(stage)
    if stage == "guard":  # guards reading the order have no series, only block events
        ids += tr.event_ids(BLOCK)
    return [(rid, None) for rid in dict.fromkeys(ids)]


def _stage_rules(a, tr: Trace, rules: RuleSet | None, stage: str, regime: str, params: dict, t: int, i: int,
                 shown: tuple[str, str] = ("FIRES", "-"), why_when: bool = True,
                 evaluated: bool = False, owner: str | None = None) -> dict[str, bool | None]:
    """One line per rule of a stage: n/a outside its regimes, else its verdict shown as
    ``shown`` (true, false), with its why when the verdict is ``why_when``.
    Returns the verdicts of the rules in scope (None: not evaluated). ``evaluated``: the stage
    surely ran for this symbol, so a per-cycle rule with no trace event held for no symbol.
    ``owner``: a book's position closes on its own strategy's exits only; the others are n/a."""
    verdicts: dict[str, bool | None] = {}
    for rid, rule in _stage_ids(tr, rules, stage):
        if owner is not None and not rid.startswith(owner + "."):
            a.item(rid, "n/a", f"the position belongs to strategy {owner}")
            continue
        scope = _scope_note(rule, regime)
        if scope:
            a.item(rid, "n/a", scope)
            continue
        v = verdicts[rid] = _verdict(tr, stage, rid, t, i)
        if v is None and evaluated:
            v = verdicts[rid] = False
        why = _fill(rule.why, params) if rule is not None and v is why_when else ""
        a.item(rid, "not evaluated" if v is None else shown[0] if v else shown[1], why)
    return verdicts


def _verdict(tr: Trace, stage: str, rid: str, t: int, i: int) -> bool | None:
    """A rule's verdict: its series mask, or the per-cycle event (None: not evaluated)."""
    v = tr.bit(series_key(stage, rid), t, i)
    if v is not None:
        return v
    return tr.in_event(CYCLE_TRUE + rid, t, i)


def explain(run_dir: Path | str, symbol: str, time: str) -> str:
    run_dir = Path(run_dir)
    trace_path, results_path = run_dir / "trace.npz", run_dir / "results.json"
    for p in (trace_path, results_path):
        if not p.exists():
            raise UserError(f"explain.run_dir {run_dir} has no {p.name}; expected the output directory of a backtest run")
        outside = leaves_root(run_dir, p)
        if outside is not None:  # refused unread: its content could be quoted in an error
            raise UserError(f"explain.run_dir {run_dir}: {p.name} is a symbolic link that leads outside the run "
                            f"directory (to {outside}); expected the {p.name} a backtest run wrote there")
    try:
        tr = Trace.load(trace_path)
    except TraceError as exc:
        raise UserError(f"explain.run_dir {run_dir}: {exc}") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise UserError(f"explain.run_dir {run_dir}: trace.npz cannot be read ({type(exc).__name__}: {exc}); "
                        f"expected the trace a backtest run wrote, complete") from None
    try:
        results = json.loads(results_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"explain.run_dir {run_dir}: results.json cannot be read ({type(exc).__name__}: {exc}); "
                        f"expected the results a backtest run wrote, complete") from None
    if symbol not in tr.symbols:
        close = difflib.get_close_matches(symbol, tr.symbols, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"explain.symbol {symbol!r} is not in this run{hint}; expected one of its "
                        f"{len(tr.symbols)} symbols, e.g. {', '.join(tr.symbols[:5])}")
    i = tr.symbols.index(symbol)
    ms = parse_time(time)
    t = int(np.searchsorted(tr.times, ms, side="right")) - 1
    last = tr.stop - 2  # the last bar that decided (the final bar only marks to market)
    if t < tr.start or t > last:
        raise UserError(f"explain.time {time!r} is outside the run; expected a time between "
                        f"{iso_utc(int(tr.times[tr.start]))} and {iso_utc(int(tr.times[last]))}")
    rules, note = _load_rules(results)
    params = {k: getattr(rules, k).params if rules else {} for k in ("regime", "universe", "strategy", "risk", "execution")}
    regime = tr.regime_labels[int(tr.regime_idx[t])]
    a = _Answer()
    nxt = iso_utc(int(tr.times[t + 1]))
    a.head(f"{symbol} at {iso_utc(int(tr.times[t]))} (bar {t}; orders decided here fill at the {nxt} open)")
    if note:
        a.head(note)

    # 1 regime
    a.head(f"\nregime: {regime}")
    if rules is not None:
        for r in rules.regime.rules:
            a.item(r.id, "chosen" if r.id == regime else "-", _fill(r.why, params["regime"]) if r.id == regime else "")
        if regime == rules.regime.default and regime not in [r.id for r in rules.regime.rules]:
            a.item(regime, "chosen", "no regime rule held: the default")

    held = _holding(results, symbol, int(tr.times[t]))
    available = tr.bit("available", t, i)
    book = results.get("strategies") or {}
    if book:
        a.head("\nbook: " + ", ".join(f"{name} ({float(st.get('share') or 0):.0%} of equity)" for name, st in book.items())
               + "; one account, one set of risk caps")
    owner = _strategy_at(results, symbol, int(tr.times[t])) if (book and held) else None
    a.head(f"\nposition: {'holding ' + f'{held:g}' if held else 'flat'}"
           + (f" (strategy {owner})" if owner else "")
           + f"; bar data: {'yes' if available else 'missing (gap or not listed)'}")
    for f in results.get("trades") or []:  # the strategy's protect: block fills inside the bar
        if (f.get("symbol") == symbol and str(f.get("rule") or "").startswith("protect:")
                and parse_time(f["time"]) == int(tr.times[t])):
            a.head(f"  {f['rule']} sold {f['qty']:g} at {f['price']:g} inside this bar (before its close)")

    # 2 universe
    a.head("\nuniverse filters (all that apply must pass):")
    failed = []
    for rid, rule in _stage_ids(tr, rules, "universe"):
        scope = _scope_note(rule, regime)
        if scope:
            a.item(rid, "n/a", scope)
            continue
        ok = tr.bit(series_key("universe", rid), t, i)
        why = _fill(rule.why, params["universe"]) if (rule is not None and not ok) else ""
        a.item(rid, "pass" if ok else "FAIL", why)
        if not ok:
            failed.append(rid)
    eligible = bool(tr.bit("eligible", t, i))
    member = bool(tr.bit("universe", t, i))
    rebuilds = np.flatnonzero(tr.z["rebuilds"][: t + 1])
    r = int(rebuilds[-1]) if len(rebuilds) else t
    n_elig = int(tr.row("eligible", r).sum())
    top = rules.universe.top if rules else None
    by = f" by {rules.universe.rank_by.key}" if rules is not None and rules.universe.rank_by is not None else ""
    if member:
        member_text = f"in the universe (list built {iso_utc(int(tr.times[r]))}: {int(tr.row('universe', r).sum())} of {n_elig} eligible kept)"
    elif not tr.bit("eligible", r, i):
        member_text = (f"not in the universe: not eligible when the list was built at {iso_utc(int(tr.times[r]))}"
                       + (" (it is eligible now; the list is cached until its TTL or a regime change)" if eligible else ""))
    else:
        member_text = (f"not in the universe: eligible, but ranked below the top {top}{by} when the list was built "
                       f"at {iso_utc(int(tr.times[r]))} ({n_elig} eligible)")
    a.head(f"  => {member_text}")

    halts = tr.halts_at(t)
    blocked_by_halt = []
    if rules is not None:
        for h in rules.risk.halts:
            if h.rule.id in halts:
                blocked_by_halt.append(h.rule.id)
    else:
        blocked_by_halt = halts

    bought = bool(tr.in_event(BUY, t, i))
    sold = bool(tr.in_event(SELL, t, i))

    if held:
        # 3 exits
        a.head("\nexit rules (any closes):")
        _stage_rules(a, tr, rules, "exit", regime, params["strategy"], t, i, owner=owner)
    else:
        # 4 halts, entries, vetoes
        a.head("\nrisk halts:")
        if not halts:
            a.item("(none active)", "")
        for hid in halts:
            h = next((h for h in rules.risk.halts if h.rule.id == hid), None) if rules else None
            a.item(hid, "ACTIVE", (f"{h.action}: " + _fill(h.rule.why, params["risk"])) if h else "")
        a.head("\nentry rules (any opens):")
        entries = _stage_rules(a, tr, rules, "entry", regime, params["strategy"], t, i)
        # a scoped protection of the risk file (cooldown, stop_outs, low_profit) locked it out
        locked_by = [lid for lid in tr.event_ids(LOCK) if tr.in_event(LOCK + lid, t, i)]
        if locked_by:
            a.head("\nscoped protections:")
            for lid in locked_by:
                lk = next((x for x in rules.risk.locks if x.id == lid), None) if rules else None
                a.item(lid, "LOCKED", (f"{lk.type}, scope {lk.scope}" + (f": {lk.why}" if lk.why else "")) if lk else "")
        # an entry fired for a buyable symbol with no halt or lock: decide ran the vetoes on it
        reached = (any(entries.values()) and member and bool(available) and not blocked_by_halt
                   and not locked_by)
        a.head("\nvetoes (all must pass):")
        vetoes = _stage_rules(a, tr, rules, "veto", regime, params["risk"], t, i, shown=("pass", "VETO"), why_when=False,
                              evaluated=reached)
        candidate = bool(tr.in_event(CANDIDATE, t, i))
        a.head(f"  => entry candidate after signals and vetoes: {'yes' if candidate else 'no'}")
        clips = [cid for cid in tr.event_ids(CLIP) if tr.in_event(CLIP + cid, t, i)]
        if candidate:
            a.head("\nrisk caps:")
            a.item("(none clipped)" if not clips else ", ".join(clips), "clipped" if clips else "")

    # 5 guards (only orders are guarded)
    guards = []
    for rid, rule in _stage_ids(tr, rules, "guard"):
        if tr.in_event(BLOCK + rid, t, i):
            guards.append(rid)
    if guards:
        a.head("\nexecution guards that stopped the order:")
        for rid in guards:
            rule = next((g for g in rules.execution.guards if g.id == rid), None) if rules else None
            a.item(rid, "BLOCKED", _fill(rule.why, params["execution"]) if rule else "")

    # 6 outcome
    by = ""
    if book and (bought or sold):
        who = _strategy_at(results, symbol, int(tr.times[t + 1]), "buy" if bought else "sell")
        by = f" for strategy {who}" if who else ""
    if bought:
        outcome = f"BUY order sent{by}; it fills at the {nxt} open"
    elif sold:
        outcome = f"SELL order sent{by}; it fills at the {nxt} open"
    elif held:
        outcome = "held: no exit rule fired" if not guards else f"held: the exit was stopped by {', '.join(guards)}"
    elif not available:
        outcome = "not bought: no bar for this symbol at this time"
    elif not member:
        outcome = "not bought: " + (f"filtered out by {', '.join(failed)}" if failed else member_text.split(": ", 1)[1])
    elif blocked_by_halt:
        outcome = f"not bought: entries blocked by halt {', '.join(blocked_by_halt)}"
    elif not held and locked_by:
        outcome = f"not bought: locked by protection {', '.join(locked_by)}"
    elif not bool(tr.in_event(CANDIDATE, t, i)):
        vetoed = [rid for rid, v in vetoes.items() if v is False]
        outcome = f"not bought: vetoed by {', '.join(vetoed)}" if vetoed else "not bought: no entry rule fired"
    elif guards:
        outcome = f"not bought: the order was stopped by {', '.join(guards)}"
    elif clips:
        outcome = f"not bought: risk caps left no room ({', '.join(clips)})"
    else:
        outcome = "not bought: the order rounded to zero (size increment or minimum notional)"
    a.head(f"\noutcome: {outcome}")
    return a.text()


def main(cfg: Mapping[str, Any]) -> str:
    """Entry point of ``mode=explain``: prints (and returns) the answer."""
    ex = cfg.get("explain") or {}
    account = (cfg.get("mode") or {}).get("state")
    missing = [k for k in ("run_dir", "symbol", "time") if not ex.get(k) and not (k == "run_dir" and account)]
    if missing:
        raise UserError(f"mode=explain needs {', '.join('explain.' + k for k in missing)}; e.g. "
                        "explain.run_dir=outputs/2024-01-01/12-00-00 explain.symbol=SOL/USDC explain.time=2024-11-02T14:00 "
                        "(or mode.state=paper for the paper account's state file)")
    if ex.get("run_dir"):
        from engine.paths import project_path

        run_dir = Path(str(ex["run_dir"]))
        if not run_dir.is_absolute():
            run_dir = project_path(str(run_dir))
        text = explain(run_dir, str(ex["symbol"]), str(ex["time"]))
    else:
        text = explain_account(cfg, str(account), str(ex["symbol"]), str(ex["time"]))
    print(text, end="")
    return text


def explain_account(cfg: Mapping[str, Any], mode: str, symbol: str, time: str) -> str:
    """explain on a dry_run, paper or live account, from its state file (live.state_dir,
    live.account): the trace its cycles stored, over the bars it decided on."""
    import tempfile

    from engine.live.report import write_explainable
    from engine.live.settings import LiveSettings
    from engine.live.store import StateStore
    from engine.modes.setup import load_rules
    from engine.modes.shadow import state_mode
    from engine.sim.settings import SimSettings

    mode = state_mode({"mode": {"state": mode}})
    path = LiveSettings.from_mapping(cfg.get("live")).state_path(mode)
    if not path.exists():
        raise UserError(f"mode.state={mode}: no state file at {path} (live.state_dir / live.account); "
                        f"run mode={mode} first, or give explain.run_dir")
    outside = leaves_root(path.parent, path)
    if outside is not None:
        raise UserError(f"{path} is a symbolic link that leads outside live.state_dir (to {outside}); "
                        f"expected the {mode} state file itself")
    store = StateStore(path)
    try:
        with tempfile.TemporaryDirectory(prefix="rulebook-explain-") as tmp:
            if not write_explainable(store, load_rules(cfg), SimSettings.from_run_config(cfg), dict(cfg), tmp):
                raise UserError(f"{path} holds no cycle yet: nothing to explain")
            return explain(tmp, symbol, time)
    finally:
        store.close()
