"""How long check_config takes on the full composed config (goal: < 50 ms per call).

    python benchmarks/config_speed.py [--n 200]
Prints compose time, first-call time (imports + sanity file compile) and ms per call after that.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()

    t0 = time.perf_counter()
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from engine.config import check_config

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        t1 = time.perf_counter()
        cfg = compose(config_name="config", overrides=["strategy=momentum", "risk=aggressive"])
    t2 = time.perf_counter()
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    env = dict(os.environ)

    t3 = time.perf_counter()
    first = check_config(plain, mode="backtest", env=env)
    t4 = time.perf_counter()
    assert first.ok, first.format()

    for label, mode, edit in (("backtest (valid)", "backtest", None),
                              ("live (problems)", "live", ("risk", "params", "max_positionz"))):
        doc = plain if edit is None else {**plain, "risk": {**plain["risk"], "params": {**plain["risk"]["params"], edit[2]: 3}}}
        times = []
        for _ in range(args.n):
            s = time.perf_counter()
            check_config(doc, mode=mode, env=env)
            times.append((time.perf_counter() - s) * 1000)
        times.sort()
        print(f"check_config {label:17s}: median {statistics.median(times):.2f} ms, "
              f"p95 {times[int(0.95 * len(times)) - 1]:.2f} ms per call over {args.n} calls")
    print(f"imports {1000 * (t1 - t0):.0f} ms, compose {1000 * (t2 - t1):.0f} ms, "
          f"first check_config (compiles sanity_checks.yaml) {1000 * (t4 - t3):.1f} ms")


if __name__ == "__main__":
    main()
