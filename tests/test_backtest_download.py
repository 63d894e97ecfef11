"""engine.market.download against a local stub of Coinbase's public candles endpoint."""
from __future__ import annotations

import numpy as np
import pytest

from engine.market.download import download
from engine.market.loaders import load_csv_dir
from engine.market.validate import DataError
from tests.helpers.candles import HOUR, T0, candle_server, exchange


@pytest.fixture
def stub():
    with candle_server() as srv:
        yield srv


def test_download_pages_and_writes_loadable_csv(stub, tmp_path):
    stub.bars["BTC-USDC"] = [(T0 + i * HOUR, 40_000.0 + i) for i in range(700)]
    stub.bars["ETH-USDC"] = [(T0 + i * HOUR, 2_000.0 + i) for i in range(700) if i != 5]  # one missing bar
    done = download(exchange(stub), ["BTC/USDC", "ETH/USDC"], "1h", T0 * 1000, (T0 + 650 * HOUR) * 1000,
                    tmp_path, page=300)
    assert [(d.symbol, d.new) for d in done] == [("BTC/USDC", 650), ("ETH/USDC", 649)]
    assert len([r for r in stub.requests if "BTC-USDC" in r[0]]) == 3  # 300 + 300 + 50
    md = load_csv_dir(tmp_path, "1h")
    assert md.symbols == ("BTC/USDC", "ETH/USDC") and md.n_bars == 650
    j = md.index_of("BTC/USDC")
    assert md.open[0, j] == 40_000.0 and md.close[649, j] == pytest.approx(40_649 * 1.005)
    assert np.isnan(md.close[5, md.index_of("ETH/USDC")])


def test_download_extends_existing_file(stub, tmp_path):
    stub.bars["BTC-USDC"] = [(T0 + i * HOUR, 100.0 + i) for i in range(48)]
    ex = exchange(stub)
    download(ex, ["BTC/USDC"], "1h", T0 * 1000, (T0 + 24 * HOUR) * 1000, tmp_path)
    (d,) = download(ex, ["BTC/USDC"], "1h", (T0 + 20 * HOUR) * 1000, (T0 + 48 * HOUR) * 1000, tmp_path)
    assert (d.new, d.bars) == (28, 48)
    assert load_csv_dir(tmp_path, "1h").n_bars == 48


def test_download_rejects_bad_bars_before_writing(stub, tmp_path):
    bars = [(T0 + i * HOUR, 100.0) for i in range(10)]
    bars[4] = (T0 + 4 * HOUR, -1.0)
    stub.bars["BTC-USDC"] = bars
    with pytest.raises(DataError, match="BTC/USDC"):
        download(exchange(stub), ["BTC/USDC"], "1h", T0 * 1000, (T0 + 10 * HOUR) * 1000, tmp_path)
    assert not list(tmp_path.glob("*.csv"))
