"""Alert delivery latency on a burst: 100 alerts committed at once to a state file, delivered by the
notify dispatcher (engine/live/notify) to a local receiver (tests/helpers/receiver.py, 127.0.0.1).
Latency = receiver's arrival wall time - the alert's recorded wall time. Prints figures; asserts nothing.

    python benchmarks/console_alerts.py [N_ALERTS]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.live.notify.dispatcher import Dispatcher  # noqa: E402
from engine.live.notify.settings import NotifySettings  # noqa: E402
from engine.live.store import StateStore  # noqa: E402
from tests.helpers.receiver import Receiver  # noqa: E402


def burst(n: int, rate_per_minute: int, channel: str) -> dict:
    rec = Receiver()
    os.environ["RB_BENCH_URL"] = f"{rec.url}/{channel}"
    with tempfile.TemporaryDirectory() as d:
        st = StateStore(Path(d) / "s.sqlite")
        st.put("meta", "session", {"account": "bench", "mode": "paper"})
        s = NotifySettings.from_mapping({"channels": [{"type": channel, "url_env": "RB_BENCH_URL"}],
                                         "rate_per_minute": rate_per_minute})
        disp = Dispatcher.start_for(s, st.path)
        while disp.rounds == 0:
            time.sleep(0.01)
        with st.txn() as db:  # the burst: one cycle raising n alerts
            for k in range(n):
                st.alert(db, "error", "order_rejected", f"order {k} rejected by the exchange", k)
        sent = {r[0]: r[1] for r in st.db.execute("SELECT id, wall_ms FROM alerts")}
        want = n if rate_per_minute >= n else rate_per_minute
        deadline = time.monotonic() + 60
        while len(rec.got) < want and time.monotonic() < deadline:
            time.sleep(0.005)
        disp.stop()
        lat = []
        for r in rec.got:
            items = r.body.get("items") or [r.body]
            lat += [r.wall_s * 1000 - sent[i["alert_id"]] for i in items]
        st.close()
    rec.close()
    a = np.array(lat)
    return {"messages": len(rec.got), "alerts": len(a), "p50": np.percentile(a, 50), "p95": np.percentile(a, 95),
            "max": a.max()}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print(f"burst of {n} alerts, poll_s 0.2 (default), one webhook on 127.0.0.1")
    for rate, label in ((1000, "rate limit above the burst: one message per alert"),
                        (20, "default rate limit 20/min: 19 alone + 1 digest")):
        r = burst(n, rate, "webhook")
        print(f"  {label:<52} {r['messages']:>4} messages, {r['alerts']} alerts delivered; latency ms "
              f"p50 {r['p50']:.0f}  p95 {r['p95']:.0f}  max {r['max']:.0f}")


if __name__ == "__main__":
    main()
