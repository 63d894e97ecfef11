"""Sweeps: what a multirun job needs beyond a single run (error capture, objective, shared data,
progress). Launchers and sweepers themselves are Hydra plugins configured in conf/hydra/.

- ``engine.sweep.job``: ``sweep_job`` (wrap the task function), ``in_multirun``, ``run_progress``
- ``engine.sweep.plan``: expand a grid sweep's overrides (job count, data specs to warm)
- ``engine.sweep.callbacks``: ``SweepSetup`` Hydra callback (warm the sample market, sweep progress)
"""
