"""Plain-language warnings about a finished backtest that probably did not test what was meant.

A run that never trades looks like a flat line in the report; these say why, from what the
run already counted (rule_stats, the universe's size, the symbols' quote currencies).
They are warnings, never errors: an empty universe can be what a user asked for.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from engine.run_warnings import Diagnostic, as_dicts  # noqa: F401  (as_dicts: for the modes)

# Quotes whose amounts are US dollars, near enough for the `*_usd` names and USD thresholds.
USD_QUOTES = frozenset({"USD", "USDC", "USDT", "DAI", "PYUSD", "BUSD", "TUSD", "FDUSD", "USDP", "GUSD"})


def _most_blocking(rule_stats: Mapping[str, Mapping[str, int]], prefix: str) -> tuple[str, int, int] | None:
    """(rule id, blocked, blocked + passed) of the rule of this kind that blocked the most."""
    best = None
    for key, s in rule_stats.items():
        if key.startswith(prefix) and s.get("blocked", 0) > 0:
            seen = s.get("blocked", 0) + s.get("passed", 0)
            if best is None or s["blocked"] > best[1]:
                best = (key[len(prefix):], s["blocked"], seen)
    return best


def _share(blocked: int, seen: int) -> str:
    return f"{100.0 * blocked / seen:.1f}%" if seen else "all"


def participation_cap(results: Mapping[str, Any]) -> list[Diagnostic]:
    """The warning that the volume participation cap cut fills (none when it cut nothing): a
    backtest's, and a paper or dry_run session's (their fill model is the backtest's)."""
    cap = results.get("participation") or {}
    if not cap.get("cut"):
        return []
    return [Diagnostic(
        "participation_cap",
        f"the volume participation cap (backtest.max_participation = {cap['max_participation']:g}) cut "
        f"{cap['cut']} of {cap['orders']} fills: {100.0 * cap['cut_share']:.1f}% of their notional "
        f"({cap['cut_notional']:.2f} of {cap['wanted_notional']:.2f}), up to "
        f"{100.0 * cap['max_cut_share']:.1f}% of one order. Cut entries are smaller than sized; cut "
        f"exits retry next bar.",
    )]


def diagnose(results: Mapping[str, Any], symbols: Iterable[str]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    stats = results.get("rule_stats") or {}
    universe = results.get("universe") or {}
    n_trades = (results.get("metrics") or {}).get("n_trades") or 0
    if universe.get("size_mean") == 0:
        worst = _most_blocking(stats, "universe:")
        why = (f": universe filter '{worst[0]}' blocked {_share(worst[1], worst[2])} of symbol-bars"
               if worst else "")
        out.append(Diagnostic(
            "empty_universe",
            f"the universe was empty on every bar, so nothing could be traded{why}. Loosen it with "
            f"universe.params.* overrides, or check that the data is what the universe rules expect.",
        ))
    elif n_trades == 0:
        passed = sum(s.get("passed", 0) for k, s in stats.items() if k.startswith("entry:"))
        if not passed:
            after = "; no entry rule passed on any bar"
        else:
            stoppers = [(s.get("blocked", 0), k) for k, s in stats.items()
                        if k.split(":", 1)[0] in ("cap", "guard", "halt") and s.get("blocked", 0) > 0]
            named = ", ".join(f"{k} blocked {n}" for n, k in sorted(stoppers, key=lambda x: (-x[0], x[1]))[:3])
            after = f"; the entries passed on {passed} symbol-bars" + (f", and {named}" if named else "")
        out.append(Diagnostic("no_trades", f"no trade in the whole run{after}."))
    out += participation_cap(results)
    quotes = sorted({s.rsplit("/", 1)[-1] for s in symbols if "/" in s})
    # US-dollar quotes (USD, USDC, USDT, ...) are one currency here, near enough for a backtest
    families = {"USD" if q in USD_QUOTES else q for q in quotes}
    if len(families) > 1:
        out.append(Diagnostic(
            "mixed_quotes",
            f"the symbols are quoted in {', '.join(quotes)}: one account's cash is one currency, so prices, "
            f"cash and equity add up amounts of different currencies. Select symbols of one quote "
            f"(data.symbols).",
        ))
    elif quotes and quotes[0] not in USD_QUOTES:
        q = quotes[0]
        out.append(Diagnostic(
            "non_usd_quote",
            f"the symbols are quoted in {q}: prices, cash, equity and every *_usd value or threshold "
            f"(volume_usd_24h, universe.params.min_volume_usd, ...) are amounts of {q}, not US dollars.",
        ))
    return out

