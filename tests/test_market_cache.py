import logging

import numpy as np

from engine.market import sample
from engine.market.cache import load_market_file, save_market
from engine.market.sample import generate_sample_market, load_sample_market
from tests.helpers.market import small_spec


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_cache_miss_writes_one_file_and_hit_returns_equal_data(tmp_path, monkeypatch):
    spec = small_spec()
    first = load_sample_market(spec, tmp_path)
    assert len(_files(tmp_path)) == 1 and _files(tmp_path)[0].endswith(".npz")  # no temp files left

    # A hit must not regenerate: make generation impossible and load again.
    def boom(_spec):
        raise AssertionError("generated on a cache hit")

    monkeypatch.setattr(sample, "generate_sample_market", boom)
    second = load_sample_market(spec, tmp_path)
    assert second.data_hash() == first.data_hash()
    assert second.symbols == first.symbols and second.info == first.info
    assert np.array_equal(second.true_regime, first.true_regime)
    assert second.true_regime_labels == first.true_regime_labels
    assert second.source == first.source


def test_cached_equals_freshly_generated(tmp_path):
    spec = small_spec(seed=5)
    fresh = generate_sample_market(spec)
    load_sample_market(spec, tmp_path)
    cached = load_sample_market(spec, tmp_path)
    for name in ("times", "open", "high", "low", "close", "volume", "spread_bps"):
        assert getattr(cached, name).tobytes() == getattr(fresh, name).tobytes()


def test_each_spec_gets_its_own_cache_file(tmp_path):
    load_sample_market(small_spec(seed=1), tmp_path)
    load_sample_market(small_spec(seed=2), tmp_path)
    assert len(_files(tmp_path)) == 2


def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path, caplog):
    spec = small_spec()
    good = load_sample_market(spec, tmp_path)
    path = tmp_path / _files(tmp_path)[0]
    path.write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING):
        again = load_sample_market(spec, tmp_path)
    assert again.data_hash() == good.data_hash()
    assert "unreadable" in caplog.text
    assert load_market_file(path) is not None  # rewritten


def test_cache_built_for_another_key_is_not_trusted(tmp_path, caplog):
    md = generate_sample_market(small_spec())
    path = save_market(md, tmp_path / "x.npz", key="old")
    with caplog.at_level(logging.WARNING):
        assert load_market_file(path, key="new") is None
    assert "other settings" in caplog.text
    assert load_market_file(path, key="old").data_hash() == md.data_hash()


def test_tampered_values_fail_the_hash_check(tmp_path):
    md = generate_sample_market(small_spec())
    md.close[5, 0] = md.close[5, 0] * 1.5
    md._hash = "0" * 64  # stored hash no longer matches the arrays
    path = save_market(md, tmp_path / "x.npz")
    assert load_market_file(path) is None
    assert load_market_file(path, verify=False) is not None


def test_missing_file_is_a_miss(tmp_path):
    assert load_market_file(tmp_path / "nope.npz") is None
