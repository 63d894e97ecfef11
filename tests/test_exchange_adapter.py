"""The adapter driving the real ccxt coinbase client against the local emulator."""
import numpy as np
import pytest

from engine.exchange import ErrorKind, ExchangeAdapter, ExchangeCallError, ExchangeConfig, OrderRequest
from engine.exchange.errors import CredentialsError
from tests.helpers.exchange import emulator_and_adapter, limit_order, make_config, market_order


def test_markets_quotes_candles_balances_fees():
    with emulator_and_adapter() as (emu, ad):
        emu.set_product_status("SOL-USDC", limit_only=True)
        emu.set_product_status("ADA-USDC", cancel_only=True)
        m = ad.markets()
        assert m["BTC/USDC"].price_increment == 0.01 and m["BTC/USDC"].exchange_id == "BTC-USDC"
        assert m["SOL/USDC"].limit_only and m["SOL/USDC"].tradable
        assert m["ADA/USDC"].cancel_only and not m["ADA/USDC"].tradable
        emu.set_quote("BTC-USDC", 100.0, 101.0)
        q = ad.best_bid_ask(["BTC/USDC", "ETH/USDC"])
        assert (q["BTC/USDC"].bid, q["BTC/USDC"].ask) == (100.0, 101.0)
        assert q["ETH/USDC"].bid < q["ETH/USDC"].ask and q["ETH/USDC"].observed_at > 0
        bars = ad.ohlcv("BTC/USDC", "1h", emu.market.now_ms() - 10 * 3_600_000, 10)
        assert bars.shape[1] == 6 and 9 <= len(bars) <= 10
        assert np.all(np.diff(bars[:, 0]) == 3_600_000) and np.all(bars[:, 2] >= bars[:, 3])
        bal = ad.balances()
        assert bal["USDC"].free == pytest.approx(100_000.0)
        fee = ad.fee_tier()
        assert (fee.maker, fee.taker) == (0.004, 0.006)


def test_orders_lifecycle_and_client_order_id_is_ours():
    with emulator_and_adapter() as (emu, ad):
        emu.set_quote("BTC-USDC", 100.0, 101.0)
        filled = ad.create_order(market_order(qty=1.0, seq=1))
        assert filled.status == "closed" and filled.filled == pytest.approx(1.0, rel=1e-6)
        resting = ad.create_order(limit_order(qty=2.0, price=90.0, seq=2))
        assert resting.status == "open" and resting.filled == 0.0
        ids = {o["client_order_id"] for o in emu.orders()}
        assert ids == {filled.client_order_id, resting.client_order_id}  # not ccxt-<uuid>
        assert [o.client_order_id for o in ad.open_orders()] == [resting.client_order_id]
        emu.set_quote("BTC-USDC", 88.0, 89.0)  # the touch crosses the limit: maker fill at 90
        now = ad.fetch_order_by_client_id(resting.client_order_id)
        assert now.status == "closed" and now.average_price == pytest.approx(90.0)
        fills = ad.fills(0)
        assert len(fills) == 2 and {f.liquidity for f in fills} == {"taker", "maker"}
        bal = ad.balances()
        spent = 1.0 * 101.0 * 1.006 + 2.0 * 90.0 * 1.004
        assert bal["USDC"].total == pytest.approx(100_000.0 - spent, rel=1e-9)


def test_same_client_order_id_twice_is_one_order():
    with emulator_and_adapter() as (emu, ad):
        req = market_order(qty=0.01, seq=7)
        a = ad.create_order(req)
        b = ad.create_order(req)
        assert a == b and len(emu.orders()) == 1


def test_cancel_and_rejections():
    with emulator_and_adapter() as (emu, ad):
        emu.set_quote("ETH-USDC", 100.0, 101.0)
        o = ad.create_order(limit_order("ETH/USDC", qty=1.0, price=50.0, seq=3))
        c = ad.cancel_order(o.client_order_id)
        assert c.status == "canceled"
        assert ad.cancel_order(o.client_order_id).status == "canceled"  # second cancel is harmless
        broke = ad.create_order(limit_order("ETH/USDC", qty=10_000.0, price=99.0, seq=4))
        assert broke.status == "rejected" and "insufficient_funds" in broke.reject_reason
        emu.set_product_status("ETH-USDC", limit_only=True)
        refused = ad.create_order(market_order("ETH/USDC", side="sell", qty=0.1, seq=5))
        assert refused.status == "rejected"
        post = ad.create_order(OrderRequest("rb-post-1", "ETH/USDC", "buy", "limit", 0.1, 102.0, post_only=True))
        assert post.status == "rejected"
        assert {o["status"] for o in emu.orders()} == {"CANCELLED"}  # rejections created nothing


def test_unknown_symbol_and_missing_credentials():
    with emulator_and_adapter() as (emu, ad):
        with pytest.raises(ExchangeCallError, match="unknown symbol 'NOPE/USDC'"):
            ad.best_bid_ask(["NOPE/USDC"])
        with pytest.raises(CredentialsError, match="RB_TEST_CB_KEY"):
            ExchangeAdapter(make_config(emu.url), environ={})


def test_bad_signature_is_an_auth_error_without_retries():
    from engine.exchange.keys import throwaway_credentials
    with emulator_and_adapter() as (emu, ad):
        other = throwaway_credentials(99)  # a key the emulator does not know
        bad = ExchangeAdapter(make_config(emu.url), environ={"RB_TEST_CB_KEY": other.api_key,
                                                             "RB_TEST_CB_SECRET": other.secret})
        with pytest.raises(ExchangeCallError) as e:
            bad.balances()
        assert e.value.kind is ErrorKind.AUTH and e.value.attempts == 1
        bad.close()


def test_local_sim_config_autostarts_an_emulator():
    import yaml
    cfg = ExchangeConfig.from_mapping(yaml.safe_load(open("conf/exchange/local_sim.yaml")))
    with ExchangeAdapter(cfg) as ad:
        assert ad.emulator is not None and ad.emulator.url.startswith("http://127.0.0.1:")
        assert "BTC/USDC" in ad.markets()
        q = ad.best_bid_ask(["BTC/USDC"])["BTC/USDC"]
        assert q.bid < q.ask


def test_an_order_behind_a_hundred_newer_ones_is_found_by_client_id():
    """The lookup by client order id pages through the order list (100 per page)."""
    with emulator_and_adapter(limits=(1000.0, 1000.0)) as (emu, ad):
        emu.set_quote("BTC-USDC", 100.0, 101.0)
        states = [ad.create_order(market_order(qty=0.5, seq=i)) for i in range(105)]
        assert all(s.status == "closed" for s in states)
        from tests.helpers.exchange import env_for, throwaway_test_credentials
        with ExchangeAdapter(make_config(emu.url, 1000.0, 1000.0), environ=env_for(throwaway_test_credentials())) as fresh:
            found = fresh.fetch_order_by_client_id(states[0].client_order_id, "BTC/USDC")  # a restarted process
        assert found is not None and found.exchange_order_id == states[0].exchange_order_id


def test_fills_page_past_the_first_250():
    """Coinbase serves fills 250 per page: every fill since ``since_ms`` comes back, none twice."""
    import time
    with emulator_and_adapter(limits=(1000.0, 1000.0)) as (emu, ad):
        emu.set_quote("BTC-USDC", 100.0, 101.0)
        since = int(time.time() * 1000) - 1000
        for i in range(260):
            ad.create_order(market_order(qty=0.5, seq=i))
        got = ad.fills(since)
        assert len(got) == len({f.trade_id for f in got}) == 260


def test_local_sim_on_a_busy_port_is_a_config_error_naming_the_port():
    import socket

    import yaml

    from engine.exchange.errors import ExchangeConfigError
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        raw = yaml.safe_load(open("conf/exchange/local_sim.yaml"))
        raw["emulator"]["port"] = port
        with pytest.raises(ExchangeConfigError, match=rf"exchange.emulator.port.*{port}"):
            ExchangeAdapter(ExchangeConfig.from_mapping(raw))


def test_the_emulator_command_on_a_busy_port_says_so_without_a_traceback():
    import socket
    import subprocess
    import sys

    from engine.paths import PROJECT_ROOT
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "engine.exchange.emulator", "--port", str(port)], cwd=PROJECT_ROOT,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr and f"127.0.0.1:{port}" in r.stderr


def test_open_orders_lists_every_open_order_past_the_first_page():
    """Coinbase pages order lists (100 each): an account with 130 resting orders has 130 open orders."""
    with emulator_and_adapter(limits=(1e6, 1e6)) as (emu, ad):
        emu.set_quote("BTC-USDC", 100.0, 101.0)
        cids = {ad.create_order(limit_order(qty=1.0, price=50.0, seq=i)).client_order_id for i in range(130)}
        assert len(cids) == 130
        assert {o.client_order_id for o in ad.open_orders()} == cids
