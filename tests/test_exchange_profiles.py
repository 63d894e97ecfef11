"""Kraken and Binance through their real ccxt classes against their emulator front ends."""
from __future__ import annotations

import pytest

from engine.exchange import ExchangeAdapter, ExchangeConfig, OrderRequest, make_client_order_id
from tests.helpers.exchange import sim_config


@pytest.mark.parametrize("name,native", [("kraken_sim", "XBTUSDC"), ("binance_sim", "BTCUSDC")])
def test_round_trip_with_client_ids(name, native):
    with ExchangeAdapter(sim_config(name)) as ad:
        m = ad.markets()
        assert m["BTC/USDC"].exchange_id == native and m["BTC/USDC"].tradable  # unified symbol, native id
        q = ad.best_bid_ask(["BTC/USDC"])["BTC/USDC"]
        assert q.bid < q.ask
        cid = make_client_order_id("t", 1, "BTC/USDC", "buy", 0)
        st = ad.create_order(OrderRequest(cid, "BTC/USDC", "buy", "market", 0.01))
        assert st.status == "closed" and st.filled == pytest.approx(0.01)
        ad._orders.clear()  # a restart: only the exchange knows the order now
        found = ad.fetch_order_by_client_id(cid, "BTC/USDC")
        assert found is not None and found.client_order_id == cid and found.exchange_order_id == st.exchange_order_id
        lid = make_client_order_id("t", 1, "BTC/USDC", "buy", 1)
        assert ad.create_order(OrderRequest(lid, "BTC/USDC", "buy", "limit", 0.01, round(q.bid * 0.9, 2))).status == "open"
        assert [o.client_order_id for o in ad.open_orders()] == [lid]
        assert ad.cancel_order(lid).status == "canceled"
        fills = ad.fills(0)
        assert [f.exchange_order_id for f in fills] == [st.exchange_order_id]
        assert sum(r["rate_limited"] for r in ad.rate_metrics().values()) == 0
        assert sum(ad.emulator.rate_limited.values()) == 0


def test_unknown_ccxt_id_is_refused_with_the_supported_list():
    from engine.exchange.errors import ExchangeConfigError
    with pytest.raises(ExchangeConfigError, match="expected one of binance, coinbase, kraken"):
        ExchangeConfig.from_mapping({"ccxt_id": "kucoin"})
