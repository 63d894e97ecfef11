"""Who enforces each protection of a live position, per venue (engine/exchange/profiles.py is the one
source: ``protection_orders`` in the shipped profile and ``TAKE_PROFIT``, how a venue's take-profit
rests), as the start of a session says it (``describe``, alert ``protections``)."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from engine.exchange.errors import ExchangeConfigError
from engine.exchange.profiles import take_profit_mode
from engine.live.protect_orders import describe
from tests.helpers.exchange import SIM_PROFILES, sim_config


def _protect(**kinds) -> SimpleNamespace:
    base = {k: None for k in ("stop_loss", "take_profit", "trailing_stop", "time_stop")}
    return SimpleNamespace(**{**base, **kinds})


BOTH = _protect(take_profit=0.02, trailing_stop=0.01)
TAKE_ONLY = _protect(take_profit=0.02)


@pytest.mark.parametrize("venue, mode", [("binance", "oco"), ("kraken", "alone"), ("coinbase", "bracket")])
def test_the_shipped_profiles_say_how_a_take_profit_rests(venue, mode):
    assert take_profit_mode(sim_config(SIM_PROFILES[venue])) == mode
    assert sim_config(SIM_PROFILES[venue]).protection_orders == ("stop_limit", "take_profit")


def test_binance_rests_stop_and_take_profit_as_one_oco():
    level, said = describe(BOTH, sim_config("binance_sim"))
    assert level == "info"
    assert said == ("trailing_stop placed on the exchange as stop_limit orders; take_profit placed on the exchange "
                    "with the stop as one OCO order list (one filling cancels the other)")


def test_kraken_rests_the_stop_and_the_loop_keeps_the_take_profit_when_both_are_configured():
    level, said = describe(BOTH, sim_config("kraken_sim"))
    assert level == "warning"
    assert said.startswith("trailing_stop placed on the exchange as stop_limit orders; take_profit enforced by the "
                           "loop at each cycle on exchange kraken_sim")
    assert said.endswith("take_profit stays with the loop because kraken_sim spot holds the base of one resting "
                         "sell and the stop rests")
    level, said = describe(TAKE_ONLY, sim_config("kraken_sim"))  # alone, it rests
    assert (level, said) == ("info", "take_profit placed on the exchange as take-profit-limit orders")


def test_coinbase_rests_stop_and_take_profit_as_one_bracket_and_the_loop_keeps_time_stop():
    level, said = describe(_protect(take_profit=0.02, stop_loss=0.01, time_stop=30), sim_config("local_sim"))
    assert level == "warning"
    assert said.startswith("stop_loss placed on the exchange as stop_limit orders; take_profit placed on the exchange "
                           "with the stop as one bracket order (trigger_bracket_gtc")
    assert "time_stop enforced by the loop at each cycle on exchange local_sim" in said
    assert describe(TAKE_ONLY, sim_config("local_sim")) == ("info", "take_profit placed on the exchange as "
                                                           "take-profit-limit orders")


def test_without_take_profit_in_the_profile_the_loop_enforces_it():
    cfg = dataclasses.replace(sim_config("binance_sim"), protection_orders=("stop_limit",))
    level, said = describe(BOTH, cfg)
    assert level == "warning" and said.startswith("trailing_stop placed on the exchange as stop_limit orders; "
                                                  "take_profit enforced by the loop")


def test_a_profile_listing_take_profit_for_a_venue_that_cannot_place_it_is_refused(monkeypatch):
    from engine.exchange import profiles
    from engine.exchange.config import ExchangeConfig
    raw = _plain(sim_config("local_sim"))
    monkeypatch.setattr(profiles, "TAKE_PROFIT", {"binance": "oco"})  # as for a venue added without one
    with pytest.raises(ExchangeConfigError, match=r"exchange.protection_orders: found take_profit for coinbase"):
        ExchangeConfig.from_mapping(raw)
    ExchangeConfig.from_mapping({**raw, "protection_orders": ["stop_limit"]})  # without it: fine


def _plain(x):
    """A config dataclass tree as the mapping it was loaded from."""
    if dataclasses.is_dataclass(x):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return list(x)
    return x


# -- a stop the price gapped through (engine/live/protect_orders.py ``gapped``) ------------------------
STOP_ROW = {"type": "stop_limit", "stop_price": 95.0, "limit_price": 94.0}
BRACKET_ROW = {"type": "bracket", "stop_price": 100.0, "limit_price": 110.0}  # its limit_price: the take-profit
TAKE_ROW = {"type": "take_profit", "stop_price": 105.0, "limit_price": 105.0}


@pytest.mark.parametrize("row, bid, through", [
    (STOP_ROW, 93.99, True),  # under the limit: a sell limit cannot fill against it
    (STOP_ROW, 94.0, False),  # at the limit it fills there
    (STOP_ROW, 94.5, False),  # triggered (under the stop), fills at the bid
    (STOP_ROW, 96.0, False),  # above the stop: untriggered
    (STOP_ROW, float("nan"), False),  # no bid: not known
    (BRACKET_ROW, 94.99, True),  # triggered, its stop-limit 5% under the trigger: 95
    (BRACKET_ROW, 95.0, False),
    (BRACKET_ROW, 99.0, False),
    (TAKE_ROW, 1.0, False),  # a take-profit sells on a rise: never gapped
])
def test_a_stop_is_gapped_when_the_bid_is_under_the_limit_it_sells_at(row, bid, through):
    from engine.live.protect_orders import gapped
    assert gapped(row, bid) is through


def test_a_triggered_brackets_limit_is_the_venues_own():
    from engine.exchange.emulator.book import BRACKET_LIMIT
    from engine.exchange.profiles import BRACKET_STOP_LIMIT
    from engine.live.protect_orders import sells_at
    assert BRACKET_STOP_LIMIT == BRACKET_LIMIT == 0.05  # Coinbase's 5%, as the emulator plays it
    assert sells_at(BRACKET_ROW) == pytest.approx(95.0) and sells_at(STOP_ROW) == 94.0 and sells_at(TAKE_ROW) is None


@pytest.mark.parametrize("levels, held, rule", [
    ({"stop": 95.0, "trail_frac": 0.01}, True, "protect:trailing_stop"),  # the trail (99) binds
    ({"stop": 99.5, "trail_frac": 0.01}, True, "protect:stop_loss"),  # the stop binds
    ({"trail_frac": 0.01}, True, "protect:trailing_stop"),
    ({"stop": 95.0}, True, "protect:stop_loss"),
    ({"trail_frac": 0.01}, False, "protect:stop_loss"),  # not held: its levels are not the position's
    ({}, True, "protect:stop_loss"),  # no level known
])
def test_a_stops_rule_is_the_binding_level_of_the_book(tmp_path, levels, held, rule):
    from engine.live.protect_orders import stop_rule
    from engine.live.pstate import apply_fill
    from engine.live.store import StateStore
    from engine.sim.protect import Levels
    from tests.helpers.live import broker_context
    ctx = broker_context(StateStore(tmp_path / "s.sqlite"), ["A/USDC"])
    if held:
        apply_fill(ctx.book.pf, 0, "buy", 1.0, 100.0, 0.0, 1, "entry", 1e-8)
    if levels:
        ctx.book.levels = Levels.empty(1)
        ctx.book.levels.high[0] = 100.0
        for k, v in levels.items():
            getattr(ctx.book.levels, k)[0] = v
    assert stop_rule(ctx, "A/USDC") == rule
    assert stop_rule(ctx, "B/USDC") == "protect:stop_loss"  # not a symbol of the session
