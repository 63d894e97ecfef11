"""Prometheus metrics of a session, read from its state file at each scrape (prometheus-client,
the ``console`` extra). A custom collector: nothing is counted in the loop's process, so the loop
pays nothing for being monitored, and a restarted console reports the same numbers.

Every metric carries the labels ``account`` and ``mode``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.live.console import status as views
from engine.live.store import StateStore

# seconds: a cycle is milliseconds at a few hundred bars and grows with the panel (docs/live.md)
CYCLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _families(path: Path):
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    st = StateStore.reader(path)
    try:
        meta = st.get("meta", "session") or {}
        base = {"account": str(meta.get("account", "")), "mode": str(meta.get("mode", ""))}
        names, values = list(base), list(base.values())

        def gauge(name: str, doc: str, value, extra: dict | None = None) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=names + list(extra or {}))
            if value is not None:
                g.add_metric(values + [str(v) for v in (extra or {}).values()], float(value))
            return g

        hb = views.heartbeat(st)
        yield gauge("rulebook_up", "1 while the loop's heartbeat is fresh", 1.0 if hb["running"] else 0.0)
        yield gauge("rulebook_heartbeat_age_seconds", "seconds since the loop last beat", hb.get("last_beat_age_s"))
        yield gauge("rulebook_late", "1 when the next cycle is overdue", 1.0 if hb.get("late") else 0.0)

        timing = getattr(st, "has_cycle_timing", True)
        rows = st.db.execute("SELECT cycle_ms, lag_ms FROM cycles" if timing else "SELECT NULL, NULL FROM cycles").fetchall()
        secs = np.array([r[0] for r in rows if r[0] is not None], dtype=np.float64) / 1000.0
        h = HistogramMetricFamily("rulebook_cycle_duration_seconds", "cycle time up to its decision's commit",
                                  labels=names)
        h.add_metric(values, [(str(b), float(np.count_nonzero(secs <= b))) for b in CYCLE_BUCKETS]
                     + [("+Inf", float(len(secs)))], sum_value=float(secs.sum()))
        yield h
        c = CounterMetricFamily("rulebook_cycles", "cycles decided", labels=names)
        c.add_metric(values, float(len(rows)))
        yield c
        last = st.rows("SELECT equity, cash, exposure" + (", cycle_ms, lag_ms" if timing else "")
                       + " FROM cycles ORDER BY t DESC LIMIT 1")
        last = last[0] if last else {}
        yield gauge("rulebook_cycle_last_duration_seconds", "the newest cycle's time",
                    None if last.get("cycle_ms") is None else last["cycle_ms"] / 1000.0)
        yield gauge("rulebook_cycle_lag_seconds", "how long after its bar's close the newest cycle decided",
                    None if last.get("lag_ms") is None else last["lag_ms"] / 1000.0)
        yield gauge("rulebook_equity", "account equity at the newest cycle (quote currency)", last.get("equity"))
        yield gauge("rulebook_cash", "cash at the newest cycle (quote currency)", last.get("cash"))
        yield gauge("rulebook_exposure_ratio", "share of equity held in positions", last.get("exposure"))
        yield gauge("rulebook_positions", "positions held",
                    st.db.execute("SELECT COUNT(*) FROM positions").fetchone()[0])

        o = GaugeMetricFamily("rulebook_orders", "orders by state", labels=names + ["state"])
        for state, n in st.db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status"):
            o.add_metric(values + [state], float(n))
        yield o

        rate = (st.get("state", "heartbeat") or {}).get("rate") or {}
        use = GaugeMetricFamily("rulebook_rate_budget_peak_use_ratio",
                                "highest share of a rate pool's window capacity used", labels=names + ["pool"])
        req = CounterMetricFamily("rulebook_rate_budget_requests", "requests charged to a rate pool",
                                  labels=names + ["pool"])
        cost = CounterMetricFamily("rulebook_rate_budget_cost", "cost charged to a rate pool", labels=names + ["pool"])
        for pool, m in sorted(rate.items()):
            use.add_metric(values + [pool], float(m["peak_use"]))
            req.add_metric(values + [pool], float(m["requests"]))
            cost.add_metric(values + [pool], float(m["cost"]))
        yield use
        yield req
        yield cost

        a = CounterMetricFamily("rulebook_alerts", "alerts raised", labels=names + ["kind", "level"])
        for kind, level, n in st.db.execute("SELECT kind, level, COUNT(*) FROM alerts GROUP BY kind, level ORDER BY kind, level"):
            a.add_metric(values + [kind, level], float(n))
        yield a

        if views._has_table(st, "outbox"):
            ob = GaugeMetricFamily("rulebook_notify_outbox", "alert deliveries by channel and status",
                                   labels=names + ["channel", "status"])
            for ch, status, n in st.db.execute("SELECT channel, status, COUNT(*) FROM outbox GROUP BY channel, status "
                                               "ORDER BY channel, status"):
                ob.add_metric(values + [ch, status], float(n))
            yield ob
    finally:
        st.close()


class _Collector:
    def __init__(self, path: Path):
        self.path = Path(path)

    def collect(self):
        yield from _families(self.path)


def exposition(path: Path) -> tuple[bytes, str]:
    """(body, content type) of one scrape; ImportError without prometheus-client (the console extra)."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(path))
    return generate_latest(reg), CONTENT_TYPE_LATEST
