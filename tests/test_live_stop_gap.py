"""A stop the price gaps through (issue 15): a stop-limit sell rests with its limit
``exchange.stop_limit_offset_bps`` under its stop; when the price gaps down through both, the venue
triggers it but it cannot fill and rests while the price falls on. The live broker's protections
(engine/live/protect_orders.py) then cancel it (a Binance OCO list whole; a Coinbase bracket, whose
triggered stop-limit sits 5% under its trigger) and sell the position at market under the stop's
rule, with a warning alert ``stop_gapped``; after a restart too (reconcile, then the step).

Fast: the broker's protections over each venue's emulator in step mode (the ``gap`` price fault,
engine/exchange/emulator/faults.py); slow: a live session per venue and resting form (the loop in a
subprocess, the venue's emulator front end in another)."""
from __future__ import annotations

import pytest

from engine.exchange.ids import from_native
from engine.live.protect_orders import open_stops
from engine.live.store import StateStore
from tests.helpers.exchange import shipped_emulator_and_adapter
from tests.helpers.live import held_with_levels, protected_session, state_rows

SYM, PID = "BTC/USDC", "BTC-USDC"
VENUES = ["coinbase", "kraken", "binance"]
GAP = 0.1  # through a stop 1% under the price and its limit (1% under it; a bracket's: 5% under it)


def _held(tmp, emu, ad, stop=0.01, take=None, trail=None):
    """A held 0.1 BTC bought at the bid now, its levels fixed at entry; its protection placed (the
    gap fault queued, so the venue's next step gaps under it); (ctx, broker, quotes)."""
    bid = emu.market.quote(PID)[0]
    ctx, broker, quotes = held_with_levels(StateStore(tmp / "live.sqlite"), ad, SYM, 0.1, bid,
                                           stop=None if stop is None else round(bid * (1 - stop), 2),
                                           take=None if take is None else round(bid * (1 + take), 2), trail=trail)
    quotes.bid[0] = bid
    emu.faults.add("gap", fraction=GAP)
    broker.protections._keep(ctx, 0, 5, open_stops(ctx))
    assert emu.faults.fired == [("gap", "market")]
    return ctx, broker, quotes


def _gap(emu, ad, ctx, quotes) -> dict:
    """The next step: the price opens ``GAP`` under; the venue triggered the stop and it rests
    unfilled (what the state file says once the venue is asked, as a cycle's settle asks)."""
    emu.advance()
    quotes.bid[0] = emu.market.quote(PID)[0]
    stops = [o for o in emu.book.orders.values() if o.stop_price is not None]
    assert stops and all(o.triggered and o.status == "OPEN" and o.filled == 0 for o in stops if o.status == "OPEN")
    assert ad.fills(0) == []
    return {o.client_order_id: o for o in stops}


def _chased(ctx, ad, emu, rule: str) -> None:
    """The gapped stop cancelled, exactly one market sell under ``rule`` filled, flat, nothing open."""
    rows = ctx.store.rows("SELECT type, rule, status FROM orders ORDER BY client_order_id")
    assert [(r["rule"], r["status"]) for r in rows if r["type"] == "market"] == [(rule, "filled")]
    assert {r["status"] for r in rows if r["type"] != "market"} == {"canceled"}
    (f,) = ctx.store.rows("SELECT side, rule, qty, price FROM fills")
    assert (f["side"], f["rule"], f["qty"]) == ("sell", rule, 0.1)
    assert f["price"] == emu.market.quote(PID)[0]  # at market: the gapped bid
    assert ctx.book.pf.qty[0] == 0
    assert ad.open_orders() == [] and all(o.status != "OPEN" for o in emu.book.orders.values())
    said = [a for a in ctx.alerts if a[1] == "stop_gapped"]
    assert len(said) == 1 and said[0][0] == "warning" and rule in said[0][2]
    assert "was gapped through its limit" in said[0][2] and "chased at market" in said[0][2]


@pytest.mark.parametrize("exchange", VENUES)
def test_a_stop_limit_the_price_gaps_through_is_cancelled_and_chased_at_market(tmp_path, exchange):
    with shipped_emulator_and_adapter(exchange) as (emu, ad):
        ctx, broker, quotes = _held(tmp_path, emu, ad)
        (row,) = open_stops(ctx)
        assert (row["type"], row["status"], row["rule"]) == ("stop_limit", "open", "protect:stop_loss")
        _gap(emu, ad, ctx, quotes)
        assert quotes.bid[0] < row["limit_price"] < row["stop_price"]
        broker.refresh_open(ctx)  # the cycle's settle: still open at the venue
        assert [o["status"] for o in open_stops(ctx)] == ["open"]
        broker.protections._keep(ctx, 0, 6, open_stops(ctx))
        _chased(ctx, ad, emu, "protect:stop_loss")


def test_a_binance_oco_whose_stop_leg_the_price_gaps_through_is_cancelled_whole_and_chased(tmp_path):
    with shipped_emulator_and_adapter("binance") as (emu, ad):
        ctx, broker, quotes = _held(tmp_path, emu, ad, take=0.02)
        legs = open_stops(ctx)
        assert sorted(o["type"] for o in legs) == ["stop_limit", "take_profit"] and legs[0]["list_id"]
        at_venue = _gap(emu, ad, ctx, quotes)
        assert sorted(o.status for o in emu.book.orders.values() if o.list_id) == ["EXPIRED", "OPEN"]
        broker.refresh_open(ctx)  # the take-profit leg expired: one leg left open in the state file
        (left,) = open_stops(ctx)
        assert left["type"] == "stop_limit" and at_venue
        broker.protections._keep(ctx, 0, 6, open_stops(ctx))
        _chased(ctx, ad, emu, "protect:stop_loss")


def test_a_coinbase_bracket_triggered_under_its_stop_limit_is_cancelled_and_chased(tmp_path):
    with shipped_emulator_and_adapter("coinbase") as (emu, ad):
        ctx, broker, quotes = _held(tmp_path, emu, ad, take=0.02)
        (row,) = open_stops(ctx)
        assert row["type"] == "bracket"
        _gap(emu, ad, ctx, quotes)
        # triggered, it became a stop-limit 5% under its trigger: the bid is under that
        assert quotes.bid[0] < row["stop_price"] * 0.95
        broker.refresh_open(ctx)
        broker.protections._keep(ctx, 0, 6, open_stops(ctx))
        _chased(ctx, ad, emu, "protect:stop_loss")


def test_a_stop_the_bid_is_not_under_the_limit_of_is_left_to_fill_at_the_venue(tmp_path):
    """Triggered with the bid at its limit: it fills there (a sell limit fills against a bid at it),
    so the loop neither cancels it nor sells."""
    with shipped_emulator_and_adapter("kraken") as (emu, ad):
        emu.faults.clear()
        bid = emu.market.quote(PID)[0]
        ctx, broker, quotes = held_with_levels(StateStore(tmp_path / "live.sqlite"), ad, SYM, 0.1, bid,
                                               stop=round(bid * 0.99, 2))
        quotes.bid[0] = bid
        broker.protections._keep(ctx, 0, 5, open_stops(ctx))
        (row,) = open_stops(ctx)
        quotes.bid[0] = row["limit_price"]  # as the loop saw it, before the venue matched
        broker.protections._keep(ctx, 0, 6, open_stops(ctx))
        assert [o["status"] for o in open_stops(ctx)] == ["open"]
        assert not [a for a in ctx.alerts if a[1] == "stop_gapped"]
        assert not ctx.store.rows("SELECT 1 FROM orders WHERE type='market'")


@pytest.mark.parametrize("exchange", VENUES)
def test_after_a_restart_the_first_step_chases_a_gapped_stop(tmp_path, exchange):
    """The loop was down while the price gapped through the stop: the restart's reconcile reads the
    stop open at the venue, and the first step cancels and chases it."""
    with shipped_emulator_and_adapter(exchange) as (emu, ad):
        ctx, _, quotes = _held(tmp_path, emu, ad, take=0.02 if exchange != "kraken" else None)
        _gap(emu, ad, ctx, quotes)
        ad._orders.clear()  # a new process: a new broker, the adapter's memory gone
        from engine.live.exchange_broker import ExchangeBroker
        broker = ExchangeBroker(ad)
        broker.reconcile(ctx)
        assert [o["status"] for o in open_stops(ctx)] == ["open"]  # (an OCO: its take-profit leg expired)
        broker.protections._keep(ctx, 0, 6, open_stops(ctx))
        _chased(ctx, ad, emu, "protect:stop_loss")


@pytest.mark.parametrize("exchange", VENUES)
def test_a_gapped_stop_the_state_file_lost_is_adopted_under_the_binding_trailing_rule_and_chased(tmp_path, exchange):
    with shipped_emulator_and_adapter(exchange) as (emu, ad):
        ctx, _, quotes = _held(tmp_path, emu, ad, stop=None, trail=0.01)
        assert {o["rule"] for o in open_stops(ctx) if o["type"] == "stop_limit"} == {"protect:trailing_stop"}
        _gap(emu, ad, ctx, quotes)
        with ctx.store.txn() as db:
            db.execute("DELETE FROM orders")
        ad._orders.clear()
        from engine.live.exchange_broker import ExchangeBroker
        broker = ExchangeBroker(ad)
        broker.reconcile(ctx)
        (adopted,) = open_stops(ctx)
        assert adopted["rule"] == "protect:trailing_stop"  # the binding level is the trailing one
        assert [a[1] for a in ctx.alerts].count("stop_adopted") == 1
        broker.protections._keep(ctx, 0, 6, open_stops(ctx))
        _chased(ctx, ad, emu, "protect:trailing_stop")


# -- live sessions: the loop in a subprocess, the venue's emulator process gapping the first stop ---
STOP_ONLY = "protect:\n  stop_loss: 0.01\n"
WITH_TAKE = "protect:\n  stop_loss: 0.01\n  take_profit: 0.02\n"  # an OCO on Binance, a bracket on Coinbase
STYLE = {"binance": "prefixed", "coinbase": "prefixed", "kraken": "uuid"}


@pytest.mark.slow
@pytest.mark.parametrize("exchange, form", [("binance", "stop_limit"), ("binance", "oco"), ("kraken", "stop_limit"),
                                            ("coinbase", "stop_limit"), ("coinbase", "bracket")])
def test_a_live_session_chases_the_stop_the_price_gapped_through_at_market(tmp_path, exchange, form):
    """The venue gaps the price 10% down at the step after the session's first stop comes to rest:
    it triggers and rests unfilled, and the next cycle cancels it and sells at market."""
    protect = STOP_ONLY if form == "stop_limit" else WITH_TAKE
    state = protected_session(tmp_path, exchange, protect, cycles=30, faults=(("gap", {"fraction": GAP}),))
    _chased_in_session(tmp_path, state, exchange, form)


@pytest.mark.slow
@pytest.mark.parametrize("exchange, form", [("binance", "stop_limit"), ("binance", "oco"), ("kraken", "stop_limit"),
                                            ("coinbase", "stop_limit"), ("coinbase", "bracket")])
def test_a_stop_gapped_while_the_loop_was_down_is_chased_by_the_restarts_first_cycle(tmp_path, exchange, form):
    """SIGKILL just after the first stop (an OCO, a bracket) reached the venue, its row still ``new``;
    the price gaps through it while the loop is down. The restart's reconcile finds it open at the
    venue (triggered, unfilled) and its first cycle cancels it and sells at market."""
    protect, die_at = (STOP_ONLY, "after_stop_send") if form == "stop_limit" else (WITH_TAKE, "after_take_profit_send")
    state = protected_session(tmp_path, exchange, protect, cycles=30, faults=(("gap", {"fraction": GAP}),),
                              die_at=die_at, restart_cycles=2)
    killed = [x for x in (tmp_path / "live.log").read_text().splitlines() if x.startswith("SIGKILL")]
    assert len(killed) == 1 and "after sending" in killed[0]
    _chased_in_session(tmp_path, state, exchange, form)


def _chased_in_session(tmp_path, state: dict, exchange: str, form: str) -> None:
    """What a session left after the venue gapped its first stop: one alert, one market sell under
    the stop's rule that made the symbol flat, the gapped protection cancelled unfilled, nothing of
    the symbol placed before the chase still open."""
    db = tmp_path / "state" / "default-live.sqlite"
    said = [(lvl, m) for lvl, k, m in state_rows(db, "SELECT level, kind, message FROM alerts") if k == "stop_gapped"]
    assert len(said) == 1 and said[0][0] == "warning", said
    assert "was gapped through its limit" in said[0][1] and "chased at market" in said[0][1]
    # exactly one market sell by a protection: the chase, filled under the stop's rule
    (chase,) = state_rows(db, "SELECT client_order_id, symbol, rule, status, qty FROM orders WHERE type='market' "
                          "AND rule LIKE 'protect:%'")
    cid, sym, rule, status, qty = chase
    assert (rule, status) == ("protect:stop_loss", "filled") and said[0][1].startswith(f"protect:stop_loss of {sym}:")
    fills = state_rows(db, "SELECT client_order_id, side, qty, rule FROM fills WHERE symbol=? ORDER BY rowid", (sym,))
    at = [f[0] for f in fills].index(cid)
    assert [f[3] for f in fills if f[0] == cid] == ["protect:stop_loss"] and [f[0] for f in fills].count(cid) == 1
    held = sum(f[2] if f[1] == "buy" else -f[2] for f in fills[:at])
    assert qty == pytest.approx(held, rel=1e-9) and fills[at][2] == pytest.approx(held, rel=1e-9)  # flat after it
    # at the venue: the gapped protection triggered, rested unfilled and was cancelled (an OCO's take-profit
    # leg expired when its stop leg triggered); nothing of the symbol placed before the chase is open
    pid = sym.replace("/", "-")
    ours = {from_native(o["client_order_id"], STYLE[exchange]): o for o in state["orders"]}
    sold = ours[cid]
    assert sold["status"] == "FILLED" and sold["order_configuration"].keys() == {"market_market_ioc"}
    before = [o for o in ours.values() if o["product_id"] == pid and o["created_time"] < sold["created_time"]]
    (gapped,) = [o for o in before if o["triggered"]]  # (a later position's stop may trigger and fill as usual)
    assert (gapped["status"], gapped["filled"]) == ("CANCELLED", 0.0)
    assert ("trigger_bracket_gtc" in gapped["order_configuration"]) == (form == "bracket")
    legs = [o for o in ours.values() if gapped["list_id"] and o["list_id"] == gapped["list_id"]]
    assert sorted(o["status"] for o in legs) == (["CANCELLED", "EXPIRED"] if form == "oco" else [])
    assert not [o for o in before if o["status"] == "OPEN"]
    # the state file closed its rows too
    gap_rows = state_rows(db, "SELECT status, type, rule FROM orders WHERE client_order_id=?",
                          (next(c for c, o in ours.items() if o is gapped),))
    assert gap_rows == [("canceled", "bracket" if form == "bracket" else "stop_limit", "protect:stop_loss")]


def test_a_chase_in_a_step_clears_the_closed_positions_levels_so_a_re_entry_gets_its_own(tmp_path):
    """The whole step (``ExchangeProtections.step``, as a cycle's settle runs it): the chase sells the
    position, and its levels go with it; a re-entry in the same cycle (the submit's step) is protected
    from its own entry, never sold at once by the closed position's stop (above the gapped price)."""
    from engine.cycle.features import market_series
    from engine.live.pstate import apply_fill
    from engine.rules.expr import FeatureStore
    from tests.helpers.backtest import candle_market
    from tests.helpers.protect import protect_rules

    with shipped_emulator_and_adapter("coinbase") as (emu, ad):
        bid = emu.market.quote(PID)[0]
        bars = [(bid, bid, bid, bid, 1000.0)] * 5 + [(bid * 0.9, bid * 0.9, bid * 0.9, bid * 0.9, 1000.0)] * 4
        market = candle_market(bars, symbol=SYM)
        ctx, broker, quotes = held_with_levels(StateStore(tmp_path / "live.sqlite"), ad, SYM, 0.05, bid)
        ctx.book.levels = None  # fixed by the step from the entry, as in a session
        ctx.book.protect = protect_rules(FeatureStore(market_series(market), (market.n_bars, 1)), stop_loss=0.01)
        quotes.bid[0] = bid
        emu.faults.add("gap", fraction=GAP)
        broker.protections.step(ctx, market, 4)
        (stop,) = open_stops(ctx)
        assert stop["stop_price"] == round(bid * 0.99, 2)
        emu.advance()
        quotes.bid[0] = emu.market.quote(PID)[0]
        broker.protections.step(ctx, market, 5)  # the next cycle's settle: chased
        assert ctx.book.pf.qty[0] == 0 and [a[1] for a in ctx.alerts].count("stop_gapped") == 1
        assert ctx.book.levels.high[0] != ctx.book.levels.high[0]  # NaN: gone with the position
        # the same cycle decides a re-entry at the gapped price; its fill, then the submit's step
        now = quotes.bid[0]
        apply_fill(ctx.book.pf, 0, "buy", 0.05, now, 0.0, 6, "golden_cross", 1e-8)  # (the venue holds the base)
        broker.protections.step(ctx, market, 5)
        (again,) = open_stops(ctx)
        assert again["stop_price"] == pytest.approx(now * 0.99, abs=0.01)  # from the new entry
        assert ctx.store.rows("SELECT COUNT(*) AS n FROM orders WHERE type='market'")[0]["n"] == 1  # the chase only
        broker.protections.step(ctx, market, 6)  # and the next cycle does not sell it either
        assert ctx.store.rows("SELECT COUNT(*) AS n FROM orders WHERE type='market'")[0]["n"] == 1
        assert ctx.book.pf.qty[0] == pytest.approx(0.05)
