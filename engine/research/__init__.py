"""Research that survives going live: walk-forward folds, out-of-sample runs and overfitting
statistics (docs/metrics.md, "Overfitting statistics"; docs/sweeps.md, "Walk-forward").

- ``engine.research.normal``: the standard normal CDF and its inverse, the same bits on every CPU
- ``engine.research.overfit``: deflated Sharpe ratio, probability of backtest overfitting (CSCV)
- ``engine.research.stability``: how steady the chosen parameters are across folds
"""
