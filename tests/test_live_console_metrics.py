"""The Prometheus endpoint: every figure read from the state file of a paper session, served by
the console on 127.0.0.1 and parsed with prometheus-client's own parser."""
from __future__ import annotations

import json

import pytest

from tests.helpers.console import console_server, request
from tests.helpers.live import run_mode, state_rows

prometheus_client = pytest.importorskip("prometheus_client", reason="prometheus-client is not installed "
                                        "(pip install -e '.[console]'; .ci/run installs it)")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    run_mode("paper", tmp / "state", tmp / "out", cycles=6)
    f = tmp / "state" / "default-paper.sqlite"
    srv = console_server(f, None)
    try:
        r = request(srv.url + "/metrics")
    finally:
        srv.stop()
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for fam in text_string_to_metric_families(r.body.decode()):
        for s in fam.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("account", "mode")))
            samples[(s.name, labels)] = s.value
            assert s.labels.get("account") == "default" and s.labels.get("mode") == "paper"
    return f, samples


def q(path, sql):
    return state_rows(path, sql)


def test_cycle_figures(scraped):
    f, m = scraped
    n, total_ms = q(f, "SELECT COUNT(*), SUM(cycle_ms) FROM cycles")[0]
    assert m[("rulebook_cycles_total", ())] == n == 6
    assert m[("rulebook_cycle_duration_seconds_count", ())] == n
    assert m[("rulebook_cycle_duration_seconds_sum", ())] == pytest.approx(total_ms / 1000)
    assert m[("rulebook_cycle_duration_seconds_bucket", (("le", "+Inf"),))] == n
    last_ms, lag_ms, eq, cash, ex = q(f, "SELECT cycle_ms, lag_ms, equity, cash, exposure FROM cycles ORDER BY t DESC LIMIT 1")[0]
    assert m[("rulebook_cycle_last_duration_seconds", ())] == pytest.approx(last_ms / 1000)
    assert m[("rulebook_cycle_lag_seconds", ())] == pytest.approx(lag_ms / 1000)
    assert m[("rulebook_equity", ())] == pytest.approx(eq) and m[("rulebook_cash", ())] == pytest.approx(cash)
    assert m[("rulebook_exposure_ratio", ())] == pytest.approx(ex)
    assert m[("rulebook_up", ())] == 0.0  # the session ended


def test_orders_alerts_and_rate_pools(scraped):
    f, m = scraped
    for status, n in q(f, "SELECT status, COUNT(*) FROM orders GROUP BY status"):
        assert m[("rulebook_orders", (("state", status),))] == n
    for kind, level, n in q(f, "SELECT kind, level, COUNT(*) FROM alerts GROUP BY kind, level"):
        assert m[("rulebook_alerts_total", (("kind", kind), ("level", level)))] == n
    rate = json.loads(q(f, "SELECT value FROM state WHERE key='heartbeat'")[0][0])["rate"]
    assert rate, "the emulator's adapter has rate pools"
    for pool, r in rate.items():
        assert m[("rulebook_rate_budget_requests_total", (("pool", pool),))] == r["requests"] > 0
        assert m[("rulebook_rate_budget_peak_use_ratio", (("pool", pool),))] == pytest.approx(r["peak_use"])
