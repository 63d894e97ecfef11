"""What the backtest and paper trading share: the fill model (engine/sim/fills.py), fees and
slippage (costs.py), the simulated account's settings (settings.py), the result type
(result.py) and the results dict every report reads (results.py).

Imports nothing from engine.backtest, engine.live or engine.exchange.
"""
