"""Fault injection: whatever goes wrong, the adapter ends agreeing with the exchange.

No lost order (every order the emulator holds is in the adapter's ledger with the same
exchange id, status and fill) and no duplicate (one emulator order per client id).
"""
import pytest

from engine.exchange import ErrorKind, ExchangeCallError
from tests.helpers.exchange import emulator_and_adapter, limit_order, market_order

_STATUS = {"OPEN": "open", "FILLED": "closed", "CANCELLED": "canceled"}


def assert_adapter_matches_emulator(emu, ad):
    ledger = ad.reconcile()
    orders = emu.orders()
    cids = [o["client_order_id"] for o in orders]
    assert len(cids) == len(set(cids)), "duplicate order for one client id"
    for o in orders:
        mine = ledger.get(o["client_order_id"])
        assert mine is not None, f"order {o['client_order_id']} lost by the adapter"
        assert mine.exchange_order_id == o["order_id"]
        assert mine.status == _STATUS[o["status"]]
        assert mine.filled == pytest.approx(float(o["filled_size"]))
    for cid, s in ledger.items():
        assert s.status != "unknown"
        if cid not in cids:
            assert s.status == "rejected"


CREATE_FAULTS = [
    ("rate_limit", {"body": "v3", "retry_after": 0.2}),
    ("rate_limit", {"body": "text", "retry_after": 0.2}),
    ("rate_limit", {"body": "v2", "retry_after": 0.2}),
    ("server_error", {"status": 503}),
    ("server_error", {"status": 500}),
    ("drop", {}),
    ("lost_response", {}),
    ("timeout", {"delay_s": 0.7}),
]


@pytest.mark.parametrize("kind,params", CREATE_FAULTS, ids=[f"{k}-{p.get('body', p.get('status', ''))}" for k, p in CREATE_FAULTS])
def test_create_order_fault_leaves_exactly_one_order(kind, params):
    with emulator_and_adapter(timeout_ms=400) as (emu, ad):
        ad.markets()
        emu.set_quote("BTC-USDC", 100.0, 101.0)
        emu.faults.add(kind, endpoint="create_order", **params)
        state = ad.create_order(market_order(qty=0.5, seq=11))
        assert (kind, "create_order") in emu.faults.fired
        # the request the client gave up on (timeout) may still be processed: compare after it
        assert emu.wait_idle(timeout=10), "the emulator still handles a request 10 s later"
        assert state.status in ("open", "closed") and state.exchange_order_id
        assert len(emu.orders()) == 1
        assert_adapter_matches_emulator(emu, ad)
        if kind == "rate_limit":
            assert ad.rate_metrics()["private"]["rate_limited"] == 1
            assert ad.rate_metrics()["private"]["server_pauses"] >= 1


def test_lost_response_is_recovered_by_client_order_id():
    with emulator_and_adapter() as (emu, ad):
        ad.markets()
        emu.set_quote("ETH-USDC", 100.0, 101.0)
        emu.faults.add("lost_response", endpoint="create_order")
        req = limit_order("ETH/USDC", qty=1.0, price=95.0, seq=12)
        state = ad.create_order(req)
        [server] = emu.orders()
        assert state.client_order_id == req.client_order_id == server["client_order_id"]
        assert state.exchange_order_id == server["order_id"] and state.status == "open"
        assert ("lost_response", "create_order") in emu.faults.fired
        # the recovery was a lookup, not a second create
        creates = [r for r in emu.requests if r[1] == "create_order"]
        assert len(creates) == 1


def test_rejected_order_and_matching_faults():
    with emulator_and_adapter() as (emu, ad):
        ad.markets()
        emu.set_quote("BTC-USDC", 100.0, 101.0)
        emu.faults.add("reject", code="INSUFFICIENT_FUND")
        r = ad.create_order(market_order(qty=0.1, seq=20))
        assert r.status == "rejected" and r.exchange_order_id is None
        emu.faults.add("partial_fill", fraction=0.4)
        p = ad.create_order(limit_order(qty=1.0, price=102.0, seq=21))
        assert p.status == "open" and p.filled == pytest.approx(0.4)
        emu.faults.add("delayed_fill", steps=2)
        d = ad.create_order(market_order(side="sell", qty=0.05, seq=22))
        assert d.status == "open" and d.filled == 0.0
        emu.advance()
        assert ad.fetch_order_by_client_id(d.client_order_id).filled == 0.0
        emu.advance()  # the delay has passed; the partial fill completes too
        assert ad.fetch_order_by_client_id(d.client_order_id).status == "closed"
        assert ad.fetch_order_by_client_id(p.client_order_id).filled == pytest.approx(1.0)
        assert_adapter_matches_emulator(emu, ad)


@pytest.mark.parametrize("kind,params", [("rate_limit", {"body": "v3", "retry_after": 0.1}),
                                         ("server_error", {"status": 502}), ("drop", {}),
                                         ("timeout", {"delay_s": 0.6})])
def test_reads_retry_through_faults(kind, params):
    with emulator_and_adapter(timeout_ms=300) as (emu, ad):
        ad.markets()
        emu.faults.add(kind, endpoint="best_bid_ask", times=2, **params)
        q = ad.best_bid_ask(["BTC/USDC"])
        assert "BTC/USDC" in q and ad.retries == 2


def test_persistent_outage_raises_classified_error_and_mixed_faults_settle():
    with emulator_and_adapter(max_attempts=3) as (emu, ad):
        ad.markets()
        emu.faults.add("server_error", endpoint="accounts", times=5, status=503)
        with pytest.raises(ExchangeCallError) as e:
            ad.balances()
        assert e.value.kind is ErrorKind.UNAVAILABLE and e.value.attempts == 3
        emu.faults.clear()
        emu.set_quote("SOL-USDC", 10.0, 10.1)
        kinds = ["drop", "lost_response", "server_error", "rate_limit", "partial_fill", "delayed_fill", "reject", None]
        for i, kind in enumerate(kinds):
            if kind:
                emu.faults.add(kind, endpoint="create_order", **({"retry_after": 0.05} if kind == "rate_limit" else {}))
            ad.create_order(limit_order("SOL/USDC", qty=1.0, price=10.2 if i % 2 else 9.0, seq=100 + i))
        emu.advance(3)
        assert_adapter_matches_emulator(emu, ad)
        assert len(emu.orders()) == len(kinds) - 1  # the rejected one created nothing
