"""A Hydra sweeper on Optuna's ask-and-tell interface, for a current Optuna (>= 3; 5.x here).

Hydra's own optuna sweeper (hydra-optuna-sweeper 1.3) pins optuna < 3. This one asks Optuna for
a batch of trials, hands their overrides to the configured launcher (one trial = one ordinary
run, so every trial leaves its run directory and is a row of the sweep report), and tells Optuna
each job's return value (the ``sweep.objective`` metric: engine/sweep/job.py). Select it with
``hydra/sweeper=rulebook_optuna`` (conf/hydra/sweeper/rulebook_optuna.yaml; docs/sweeps.md).

- samplers: ``tpe``, ``cmaes``, ``grid`` (every combination of ``choice``/``range`` values) and
  ``random``, seeded, so the same command proposes the same trials;
- ``storage: sqlite:///study.db`` keeps the study on disk: a search that was killed resumes
  where it stopped (same ``study_name``): completed trials count towards ``n_trials`` and are
  never run again; a trial the crash left running is marked failed and its parameters queued to
  run once more (it never finished);
- a trial whose job failed or returned no number (an undefined metric) is told FAIL; the search
  goes on;
- ``pruner: duplicate`` tells a trial whose parameters repeat a completed trial that trial's
  value without running it (samplers propose repeats on small integer spaces);
- ``pruner: median`` or ``halving``: Optuna's MedianPruner or SuccessiveHalvingPruner stop a
  trial part-way when its objective so far trails the others' at the same bar
  (engine/sweep/pruning.py); the jobs report to the study in ``storage``, or, when that is null,
  in ``optuna.db`` in the sweep dir.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from engine.errors import UserError
from engine.sweep.pruning import PRUNERS

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "cmaes", "grid", "random")


class OptunaSweeperError(UserError, ValueError):
    """A sweeper setting is wrong: one line, the key, what was found and what is expected
    (printed as ``error: ...``, exit 2, by engine.cli through engine.config.hydra_errors)."""


def _range_values(r: RangeSweep) -> list:
    start, stop, step = r.start, r.stop, r.step or 1
    vals, v = [], start
    while (v < stop) if step > 0 else (v > stop):
        vals.append(v)
        v += step
    return vals


_PLAIN = (type(None), bool, int, float, str)  # what an Optuna categorical choice may be


def distributions(params: Mapping[str, str | Sequence], name: str = "hydra.sweeper.params"
                  ) -> tuple[dict[str, Any], dict[str, list | None]]:
    """(optuna distributions, grid choices or None per key) from Hydra sweep syntax per key, or
    from a list of values (a choice: ``walkforward.grid``'s lists); errors name ``name.<key>``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    parser = OverridesParser.create()
    dists: dict[str, Any] = {}
    grid: dict[str, list | None] = {}
    for key, text in params.items():
        if isinstance(text, (list, tuple)):
            odd = next((x for x in text if not isinstance(x, _PLAIN)), None)
            if odd is not None or not text:
                raise OptunaSweeperError(f"{name}.{key} is {list(text)!r}; expected a non-empty list of numbers, "
                                         f"strings, booleans or nulls (found {odd!r})")
            v: Any = ChoiceSweep(list=list(text))
        else:
            try:
                v = parser.parse_override(f"{key}={text}").value()
            except Exception as exc:
                raise OptunaSweeperError(f"{name}.{key} is {text!r} ({exc}); expected choice(...), "
                                         f"range(lo, hi, step=s) or interval(lo, hi)") from None
        if isinstance(v, ChoiceSweep):
            choices = list(v.list)
            dists[key], grid[key] = CategoricalDistribution(choices), choices
        elif isinstance(v, RangeSweep):
            vals = _range_values(v)
            if not vals:
                raise OptunaSweeperError(f"{name}.{key} is {text!r}, an empty range; expected lo < hi")
            if all(isinstance(x, int) for x in vals):
                step = int(v.step or 1)
                dists[key] = IntDistribution(min(vals), max(vals), step=abs(step))
            else:
                dists[key] = CategoricalDistribution(vals)
            grid[key] = vals
        elif isinstance(v, IntervalSweep):
            lo, hi = v.start, v.end
            if isinstance(lo, int) and isinstance(hi, int):
                dists[key] = IntDistribution(lo, hi)
            else:
                dists[key] = FloatDistribution(float(lo), float(hi))
            grid[key] = None
        else:
            raise OptunaSweeperError(f"{name}.{key} is {text!r}, a single value; expected a sweep "
                                     f"(choice, range or interval): put fixed values on the command line")
    return dists, grid


class OptunaSweeper(Sweeper):
    def __init__(self, sampler: str = "tpe", seed: int | None = None, n_startup_trials: int = 10,
                 direction: str = "maximize", study_name: str = "rulebook", storage: str | None = None,
                 n_trials: int = 20, n_jobs: int = 1, params: Any = None, pruner: str = "none",
                 prune_checkpoints: int = 10, prune_warmup: int = 3, **_: Any):

        if sampler not in SAMPLERS:
            raise OptunaSweeperError(f"hydra.sweeper.sampler is {sampler!r}; expected one of {', '.join(SAMPLERS)}")
        if direction not in ("maximize", "minimize"):
            raise OptunaSweeperError(f"hydra.sweeper.direction is {direction!r}; expected maximize or minimize")
        if pruner not in ("none", "duplicate", *PRUNERS):
            raise OptunaSweeperError(f"hydra.sweeper.pruner is {pruner!r}; expected none, duplicate, "
                                     + ", ".join(PRUNERS[:-1]) + f" or {PRUNERS[-1]}")
        if storage is not None and (not isinstance(storage, str) or "://" not in storage):
            raise OptunaSweeperError(f"hydra.sweeper.storage is {storage!r}; expected null (in memory) or a "
                                     f"database URL such as sqlite:///study.db")
        if not isinstance(study_name, str) or not study_name.strip():
            raise OptunaSweeperError(f"hydra.sweeper.study_name is {study_name!r}; expected a non-empty name")
        if pruner == "duplicate" and sampler == "grid":
            raise OptunaSweeperError("hydra.sweeper.pruner is 'duplicate' with hydra.sweeper.sampler=grid, which "
                                     "never proposes a point twice; expected pruner=none with the grid sampler")
        self.sampler_name, self.seed = sampler, _whole("seed", seed, 0, nullable=True)
        self.n_startup = _whole("n_startup_trials", n_startup_trials, 0)
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs = _whole("n_trials", n_trials, 1), _whole("n_jobs", n_jobs, 1)
        self.pruner = pruner
        self.prune_checkpoints = _whole("prune_checkpoints", prune_checkpoints, 2)
        self.prune_warmup = _whole("prune_warmup", prune_warmup, 0)
        if pruner in PRUNERS and self.prune_warmup >= self.prune_checkpoints:
            raise OptunaSweeperError(f"hydra.sweeper.prune_warmup is {prune_warmup} with prune_checkpoints "
                                     f"{prune_checkpoints}: no step could prune; expected prune_warmup < prune_checkpoints")
        self.params = {str(k): str(v) for k, v in (OmegaConf.to_container(params) if OmegaConf.is_config(params)
                                                   else (params or {})).items()}
        self.config: DictConfig | None = None
        self.launcher = None
        self.job_idx = 0

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _sampler(self, grid: dict[str, list | None]):
        import optuna

        if self.sampler_name == "grid":
            missing = [k for k, v in grid.items() if v is None]
            if missing:
                raise OptunaSweeperError(f"hydra.sweeper.sampler is grid but {', '.join(missing)} is an interval; "
                                         f"expected choice(...) or range(...) for every key")
            return optuna.samplers.GridSampler(grid, seed=self.seed)
        if self.sampler_name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=self.seed, n_startup_trials=self.n_startup)
        if self.sampler_name == "random":
            return optuna.samplers.RandomSampler(seed=self.seed)
        return optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.n_startup)

    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from optuna.trial import TrialState

        params = dict(self.params)
        fixed: list[str] = []
        for o in OverridesParser.create().parse_overrides(arguments):
            if o.is_sweep_override():
                params[o.get_key_element()] = o.input_line.split("=", 1)[1]
            else:
                fixed.append(o.input_line)
        if not params:
            raise OptunaSweeperError("hydra.sweeper.params is empty and no sweep override was given; expected at "
                                     "least one key to search, e.g. 'strategy.params.fast=range(6,96,step=6)'")
        dists, grid = distributions(params)
        sampler = self._sampler(grid)  # first: it refuses a grid over an interval
        n_trials = self.n_trials
        if self.sampler_name == "grid":
            n_trials = min(n_trials, math.prod(len(v) for v in grid.values()))
        storage, per_trial = self.storage, []
        pruner = None
        if self.pruner in PRUNERS:
            from engine.sweep.pruning import check_objective, make_pruner

            check_objective(OmegaConf.select(self.config, "sweep.objective", default=None) if self.config else None)
            pruner = make_pruner(self.pruner, self.n_startup, self.prune_warmup)
            if storage is None:  # the jobs report to the study while they run: it must be on disk
                from pathlib import Path

                root = Path(str(self.config.hydra.sweep.dir)).resolve()
                root.mkdir(parents=True, exist_ok=True)
                storage = f"sqlite:///{root / 'optuna.db'}"
                per_trial.append(f"++hydra.sweeper.storage={storage}")
        study = optuna.create_study(study_name=self.study_name, storage=storage, sampler=sampler,
                                    direction=self.direction, load_if_exists=True, pruner=pruner)
        # a crash leaves RUNNING trials behind: they never finished, so they run once more
        orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for t in orphans:
            study.tell(t.number, state=TrialState.FAIL)
            study.enqueue_trial(t.params, skip_if_exists=False)
            log.info("optuna: trial %d was left running by an earlier process; its parameters run again", t.number)
        # trials that ran (a failed job ran too) count towards n_trials; the crash's orphans do not
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)))
        done = min(done - len(orphans), n_trials)
        if done:
            log.info("optuna: study %r resumes with %d of %d trials done", self.study_name, done, n_trials)
        self.job_idx = done
        to_go = n_trials - done
        while to_go > 0:
            batch = min(self.n_jobs, to_go)
            trials = [study.ask(dists) for _ in range(batch)]
            runs, overrides = [], []
            for t in trials:
                twin = self._twin(study, t) if self.pruner == "duplicate" else None
                if twin is not None:
                    _tell(study, t, twin)
                    log.info("optuna: trial %d repeats a completed trial's parameters; told its value %s", t.number, twin)
                    continue
                runs.append(t)
                trial = [*per_trial, f"++hydra.sweeper.trial={t.number}"] if pruner is not None else []
                overrides.append([*fixed, *(f"{k}={t.params[k]}" for k in dists), *trial])
            if overrides:
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
                self.job_idx += len(returns)
                for t, ret in zip(runs, returns):
                    value = _number(ret)
                    if _pruned(ret):  # its intermediate values are in the study already
                        _tell(study, t, state=TrialState.PRUNED)
                    elif value is None:
                        _tell(study, t, state=TrialState.FAIL)
                    else:
                        _tell(study, t, value)
            to_go -= batch
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if complete:
            best = study.best_trial
            log.info("optuna: best %s = %s with %s", self.direction, best.value, best.params)
            self._write_best(best)

    @staticmethod
    def _twin(study, trial) -> float | None:
        from optuna.trial import TrialState

        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.params == trial.params:
                return t.value
        return None

    def _write_best(self, best) -> None:
        from pathlib import Path

        import yaml

        from engine.fileio import atomic_write_text

        root = Path(str(self.config.hydra.sweep.dir)) if self.config is not None else Path(".")
        doc = {"name": "optuna", "best_params": dict(best.params), "best_value": best.value,
               "best_trial": best.number, "study_name": self.study_name}
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(root / "optimization_results.yaml", yaml.safe_dump(doc, sort_keys=True))


def _whole(key: str, value: Any, least: int, nullable: bool = False) -> int | None:
    """A whole-number sweeper setting, checked: ``hydra.sweeper.<key>`` >= ``least``."""
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise OptunaSweeperError(f"hydra.sweeper.{key} is {value!r}; expected a whole number >= {least}"
                                 + (" or null" if nullable else ""))
    return value


def _tell(study, trial, value: float | None = None, **kw) -> None:
    try:
        study.tell(trial, value, **kw)
    except RuntimeError as exc:
        # the grid sampler stops the study once every point was asked; outside study.optimize
        # that stop is an error, after the trial was recorded: nothing is lost
        if "Study.stop" not in str(exc):
            raise


def _pruned(ret) -> bool:
    from engine.sweep.pruning import is_pruned

    try:
        return is_pruned(ret.return_value)
    except Exception:  # the job raised
        return False


def _number(ret) -> float | None:
    """The job's return value as a finite float, or None (a failed job, an undefined metric)."""
    try:
        v = ret.return_value
    except Exception:  # the job raised: Hydra keeps the exception on the JobReturn
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return None
    return float(v)
