"""One product table for every mode (rules/products.yaml) and the burn-in gate's paper record."""
from __future__ import annotations

import logging

import pytest

from engine.errors import UserError
from engine.live.safeguards import PaperNeed, paper_verdict, resolve_alerts
from engine.live.store import StateStore
from engine.market.data import SymbolInfo
from engine.market.products import apply, load_product_facts, warn
from engine.market.sample import SampleSpec, generate_sample_market
from engine.paths import PROJECT_ROOT

TABLE = PROJECT_ROOT / "rules" / "products.yaml"


def test_the_sample_market_agrees_with_the_table_exactly():
    md = generate_sample_market(SampleSpec(n_symbols=42, n_bars=48))  # the whole catalogue (USDC is the quote)
    applied = apply(load_product_facts(TABLE), md.info, stated=True)
    assert applied.undeclared == () and applied.disagreements == ()
    assert applied.info == md.info  # same themes, increments and minimum notional: the backtest is unchanged


def test_stricter_wins_and_disagreements_are_named():
    facts = load_product_facts(TABLE)  # ETH/USDC: size 1e-7, price 0.01, min notional 1
    stated = (SymbolInfo("ETH/USDC", "other", 0.001, 1e-8, 5.0), SymbolInfo("NEWCOIN/USDC", "other", 0.01, 1e-8, 1.0))
    a = apply(facts, stated, stated=True)
    eth, new = a.info
    assert (eth.theme, eth.price_increment, eth.size_increment, eth.min_notional) == ("L1", 0.01, 1e-7, 5.0)
    assert new.theme == "other" and a.undeclared == ("NEWCOIN/USDC",)
    assert len(a.disagreements) == 3 and all(d.startswith("ETH/USDC") for d in a.disagreements)


def test_an_undeclared_product_gets_a_warning_naming_it(caplog):
    facts = load_product_facts(TABLE)
    a = apply(facts, (SymbolInfo("NEWCOIN/USDC"),), stated=True)
    with caplog.at_level(logging.WARNING):
        warn(logging.getLogger("t"), a, facts, "paper account default")
    assert "NEWCOIN/USDC" in caplog.text and "no declared theme" in caplog.text


def test_a_broken_table_names_file_and_key(tmp_path):
    bad = tmp_path / "products.yaml"
    bad.write_text("kind: products\nthemes: {BTC: 3}\nmarkets: {BTC/USDC: {price_increment: -1}}\n")
    with pytest.raises(UserError) as e:
        load_product_facts(bad)
    msg = str(e.value)
    assert str(bad) in msg and "themes" in msg and "markets" in msg and "price_increment" in msg


def _paper_file(path, exchange="local_sim", cycles=30, hours=25.0, rules="abc", symbols=("BTC/USDC",)):
    st = StateStore(path)
    st.put("meta", "session", {"symbols": list(symbols)})
    sid = st.db.execute("INSERT INTO sessions(started_wall_ms, ended_wall_ms, cycles, status, exchange) "
                        "VALUES (?,?,?,?,?)", (0, int(hours * 3_600_000), cycles, "passed", exchange)).lastrowid
    for t in range(cycles):
        st.db.execute("INSERT INTO cycles(t, time_ms, status, rules_hash, session) VALUES (?,?,?,?,?)",
                      (t, t, "done", rules, sid))
    return st


@pytest.mark.parametrize("change, reason", [
    ({"exchange": "local_sim"}, "ran on exchange local_sim, live is on coinbase"),
    ({"cycles": 12}, "12 cycle(s) < live.burn_in.min_paper_cycles 24"),
    ({"hours": 0.2}, "0.20 h < live.burn_in.min_paper_hours 24"),
    ({"rules": "other"}, "ran rule set(s) other, live runs abc"),
    ({"symbols": ("ETH/USDC",)}, "the paper account trades [ETH/USDC]"),
])
def test_burn_in_gate_refuses_a_paper_record_that_does_not_match(tmp_path, change, reason):
    st = _paper_file(tmp_path / "p.sqlite", **{"exchange": "coinbase", **change})
    st.close()
    v = paper_verdict(tmp_path / "p.sqlite", PaperNeed("coinbase", ("BTC/USDC",), "abc", 24, 24.0))
    assert not v.passed and reason in v.reason


def test_burn_in_gate_passes_a_matching_record_once_its_alerts_are_resolved(tmp_path):
    st = _paper_file(tmp_path / "p.sqlite", exchange="coinbase")
    st.alert(None, "error", "rules_rejected", "a broken edit", 3)
    need = PaperNeed("coinbase", ("BTC/USDC",), "abc", 24, 24.0)
    v = paper_verdict(tmp_path / "p.sqlite", need)
    assert not v.passed and "1 unresolved alert" in v.reason
    assert resolve_alerts(st) == 1
    st.close()
    assert paper_verdict(tmp_path / "p.sqlite", need).passed
