"""Digests of everything a backtest's numbers are made of, for comparing numpy dispatch levels.

    python -m tests.helpers.determinism CACHE_DIR      # prints one JSON object of digests

Run it in processes with different ``NPY_DISABLE_CPU_FEATURES`` (numpy picks its SIMD loops
once, at import): equal output means the sample market, every rule function over it, and both
committed baselines' backtests are bit-identical at those levels. CACHE_DIR must be empty and
private to the process, so the market is generated here, never read back from another level's
cache.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from tests.helpers.speed import digest

# Which features each reduced level drops (x86-64 only: numpy refuses names the platform lacks).
# Dropping X86_V4 and AVX512_ICL leaves AVX2 (X86_V3); dropping X86_V3 too leaves the baseline.
DISPATCH_LEVELS = {"as_is": None, "no_avx512": "AVX512_ICL X86_V4", "no_avx2": "AVX512_ICL X86_V4 X86_V3"}


def active_features() -> list[str]:
    """The dispatch targets numpy uses in this process (what a level actually changed)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


def market_digests(market) -> dict[str, str]:
    cols = ("times", "open", "high", "low", "close", "volume", "spread_bps", "true_regime")
    out = {f"market.{c}": digest(getattr(market, c)) for c in cols}
    out["market.info"] = digest(np.array([repr(i) for i in market.info]))
    out["market.data_hash"] = market.data_hash()
    return out


def function_digests(market) -> dict[str, str]:
    """Every function of the rule language, at its documented defaults, over the sample."""
    from engine.cycle.features import market_series
    from engine.rules.functions import FUNCTIONS

    s = market_series(market)
    close, high, low = s["close"], s["high"], s["low"]
    ret = FUNCTIONS["pct_change"].impl(close, 1)
    series_args = {
        "atr": (high, low, close), "crossover": (close, FUNCTIONS["sma"].impl(close, 24)),
        "crossunder": (close, FUNCTIONS["ema"].impl(close, 24)), "bars_since": (close > FUNCTIONS["sma"].impl(close, 48),),
    }
    elementwise_args = {
        "min": (close, high, low), "max": (close, high, low), "clip": (ret, -0.01, 0.01),
        "nan_to": (ret, 0.0), "round": (close, 2), "log": (close,), "exp": (ret * 50,), "sqrt": (ret,),
        "abs": (ret,), "sign": (ret,),
    }
    out = {}
    for name, spec in FUNCTIONS.items():
        if spec.kind == "series":
            args = series_args.get(name)
            if args is None:
                args = (close,) + tuple(24 for p in spec.params[1:] if p.type == "window" and p.default is None)
            out[f"fn.{name}"] = digest(spec.impl(*args))
        else:
            out[f"fn.{name}"] = digest(spec.impl(*elementwise_args[name]))
    from engine.rules.expr import _BIN  # the rule language's '**' on panels
    import ast
    power = _BIN[ast.Pow][0]
    out["op.**"] = digest(np.stack([power(close, 0.5), power(close, 3.0), power(1.0 + ret, 24.0 * 365), power(close, -1.5)]))
    return out


def backtest_digests(cache_dir: Path) -> dict[str, object]:
    """Each committed baseline, re-run: a digest of its snapshot and its differences (as text)."""
    from engine.modes import baseline
    from engine.paths import PROJECT_ROOT

    out: dict[str, object] = {}
    for path in sorted((PROJECT_ROOT / "baselines").glob("*.json")):
        base = baseline.read(path.stem)
        snap = baseline.run_snapshot(list(base.get("overrides", [])) + [f"data.cache_dir={cache_dir}"])
        text = json.dumps({k: snap[k] for k in ("metrics", "trades", "universe", "data_hash")}, sort_keys=True)
        out[f"backtest.{path.stem}"] = digest(np.frombuffer(text.encode(), dtype=np.uint8))
        out[f"baseline_diffs.{path.stem}"] = [str(d) for d in baseline.compare(base, snap)]
    return out


def all_digests(cache_dir: Path) -> dict[str, object]:
    from engine.market.sample import SampleSpec, generate_sample_market

    market = generate_sample_market(SampleSpec())
    return {**market_digests(market), **function_digests(market), **backtest_digests(cache_dir)}


if __name__ == "__main__":
    print(json.dumps({"features": active_features(), "digests": all_digests(Path(sys.argv[1]))}))
