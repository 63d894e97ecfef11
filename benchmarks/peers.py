"""The same SMA cross on the same data in rulebook, vectorbt and backtesting.py: print times and ratios.

    python benchmarks/peers.py [--symbols 1000] [--bars 8760] [--fast 48 --slow 240]

Peers come from the optional ``bench`` extra (``pip install -e .[bench]``); they are never a
runtime dependency. A peer that is not installed prints a skip line. rulebook runs its whole
rule pipeline (regime, universe, risk, execution guards, fees, slippage), the peers a bare
cross: the ratio flatters the peers. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rulebook(market, fast: int, slow: int) -> float:
    from engine.backtest.engine import run_backtest
    from engine.cycle.prepare import prepare
    from engine.modes.baseline import compose
    from engine.modes.setup import backtest_settings, load_rules

    cfg = compose(["strategy=sma_cross", f"strategy.params.fast={fast}", f"strategy.params.slow={slow}"])
    rules, settings = load_rules(cfg), backtest_settings(cfg, market)
    t = time.perf_counter()
    run_backtest(prepare(market, rules), settings)
    return time.perf_counter() - t


def vectorbt(market, fast: int, slow: int) -> tuple[float, float] | str:
    try:
        import pandas as pd
        import vectorbt as vbt
    except ImportError:
        return "skip: vectorbt not installed (pip install -e .[bench])"
    close = pd.DataFrame(market.close, columns=list(market.symbols)).ffill()

    def go():
        f, s = vbt.MA.run(close, fast), vbt.MA.run(close, slow)
        pf = vbt.Portfolio.from_signals(close, f.ma_crossed_above(s), f.ma_crossed_below(s), fees=0.012)
        return pf.total_return()
    t = time.perf_counter()
    go()  # first call compiles (numba)
    first = time.perf_counter() - t
    t = time.perf_counter()
    go()
    return first, time.perf_counter() - t


def backtesting_py(market, fast: int, slow: int) -> float | str:
    try:
        import pandas as pd
        from backtesting import Backtest, Strategy
        from backtesting.lib import crossover
    except ImportError:
        return "skip: backtesting.py not installed (pip install -e .[bench])"
    j = 0
    idx = pd.to_datetime(market.times, unit="ms")
    df = pd.DataFrame({"Open": market.open[:, j], "High": market.high[:, j], "Low": market.low[:, j],
                       "Close": market.close[:, j], "Volume": market.volume[:, j]}, index=idx).ffill()

    def sma(x, n):
        return pd.Series(x).rolling(n).mean().to_numpy()

    class Cross(Strategy):
        def init(self):
            self.f, self.s = self.I(sma, self.data.Close, fast), self.I(sma, self.data.Close, slow)

        def next(self):
            if crossover(self.f, self.s):
                self.buy()
            elif crossover(self.s, self.f):
                self.position.close()
    t = time.perf_counter()
    Backtest(df, Cross, cash=1e9, commission=0.012).run()
    return time.perf_counter() - t


def main() -> None:
    from engine.market.sample import SampleSpec, generate_sample_market

    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--bars", type=int, default=8760)
    ap.add_argument("--fast", type=int, default=48)
    ap.add_argument("--slow", type=int, default=240)
    a = ap.parse_args()
    big = generate_sample_market(SampleSpec(n_symbols=max(a.symbols, 30), n_bars=a.bars))
    one = big.select([big.symbols[0]])
    for label, market in ((f"{a.symbols} symbols", big), ("1 symbol", one)):
        sb = market.n_symbols * market.n_bars
        ours = rulebook(market, a.fast, a.slow)
        print(f"[{label} x {a.bars} bars] rulebook (full pipeline): {ours:.3f} s, {sb / ours:,.0f} symbol-bars/s")
        vb = vectorbt(market, a.fast, a.slow)
        if isinstance(vb, str):
            print(f"  vectorbt: {vb}")
        else:
            print(f"  vectorbt: first call {vb[0]:.2f} s (compile), then {vb[1]:.3f} s, {sb / vb[1]:,.0f} symbol-bars/s; "
                  f"rulebook/vectorbt time ratio {ours / vb[1]:.2f}")
        if market.n_symbols == 1:
            bt = backtesting_py(market, a.fast, a.slow)
            if isinstance(bt, str):
                print(f"  backtesting.py: {bt}")
            else:
                print(f"  backtesting.py: {bt:.3f} s; rulebook/backtesting.py time ratio {ours / bt:.2f}")


if __name__ == "__main__":
    main()
