"""The ``rulebook`` command (and ``python run.py``, a thin wrapper of it).

    rulebook [overrides] [-m ...]      # exactly run.py's arguments: a Hydra app over the built-in conf/
    rulebook init DIR                  # a new project: its own conf/, rules/ and a README

The project is the folder ``rulebook`` runs in (``python run.py``: the source checkout). Its
``conf/`` comes before the built-in one on Hydra's search path (``hydra_plugins/rulebook_project``)
and its relative paths (``rules_dir``, ``data.path``, caches, ``live.state_dir``) resolve against
it (``engine.paths.project_root``); Hydra's outputs land under it as before (relative to the
working directory).

Every user mistake ends the same way: one ``error: ...`` line on stderr and exit code 2. Those the
engine finds are reported by ``engine.app``; those Hydra finds while composing (an unknown key, a
bad override, a conf/ file that is not valid YAML) are turned into that format here
(``engine.config.hydra_errors``). A deprecated key typed on the command line is passed on as an
addition (``++backtest.cash=5000``) so that the config check migrates it with its warning, as it
does for one written in a file.
"""
from __future__ import annotations

import atexit
import gc
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from engine.paths import BUILTIN_CONF, PROJECT_ENV, config_dirs

IN_TASK = "__rulebook_in_task__"


def _task(cfg: Any) -> Any:
    """Hydra's task function: the composed config goes to engine.app."""
    try:
        return _run_task(cfg)
    except Exception as exc:
        # raised by the run itself, not by Hydra's composing: never dressed up as a user error
        setattr(exc, IN_TASK, True)
        raise


def _run_task(cfg: Any) -> Any:
    from engine.app import main as run_app

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    drop_renamed_defaults(cfg, [str(o) for o in OmegaConf.to_container(HydraConfig.get().overrides.task,
                                                                       resolve=False)])
    return run_app(cfg)


def drop_renamed_defaults(cfg: Any, typed: Sequence[str]) -> None:
    """A renamed key typed on the command line (``++backtest.cash=5000``, see migrate_overrides)
    replaces the new key's default, as the old key written in a file would: drop that default so
    the config check migrates the old key with its warning instead of reporting both as set."""
    from omegaconf import OmegaConf, open_dict

    from engine.config.deprecations import RENAMED

    keys = {o.split("=", 1)[0].lstrip("+~") for o in typed}
    added = {o.split("=", 1)[0][2:] for o in typed if o.startswith("++")}
    for r in RENAMED:
        if r.old in added and r.new not in keys:
            parent, _, leaf = r.new.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            if OmegaConf.is_dict(node) and leaf in node:
                with open_dict(node):
                    del node[leaf]


def overrides_of(argv: Sequence[str]) -> list[str]:
    """The overrides among Hydra's arguments (the ``key=value`` words)."""
    return [a for a in argv if "=" in a and not a.startswith("-")]


def migrate_overrides(argv: Sequence[str]) -> list[str]:
    """A deprecated key typed plainly becomes ``++key=value``: Hydra lets it into the config, where
    engine.config.deprecations migrates it (renamed: a warning) or refuses it (removed: an error)."""
    from engine.config.deprecations import DEPRECATED_PATHS

    out = []
    for a in argv:
        if "=" in a and not a.startswith(("-", "+", "~")) and a.split("=", 1)[0] in DEPRECATED_PATHS:
            a = "++" + a
        out.append(a)
    return out


def compose_config(overrides: list[str]) -> Any:
    """The config as the command composes it (the project's conf/ first), outside a run."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from engine.hydra_registry import register_hydra_plugins

    register_hydra_plugins()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(BUILTIN_CONF), job_name="run"):
        return compose(config_name="config", overrides=overrides)


def error_line(exc: BaseException, argv: Sequence[str]) -> str:
    """Hydra's, OmegaConf's or PyYAML's error as the one line printed after "error: "."""
    from engine.config.hydra_errors import describe, keys_at_factory
    from engine.config.secrets import redact_urls

    overrides = overrides_of(argv)
    return redact_urls(describe(exc, overrides, config_dirs(), keys_at_factory(compose_config)))


def run(argv: Sequence[str], project: Path) -> None:
    """Run Hydra's app on ``argv`` for ``project``; exits like run.py always did (2 on a mistake)."""
    os.environ[PROJECT_ENV] = str(Path(project).resolve())
    argv = migrate_overrides(argv)
    # At exit, mark every object permanent so that the interpreter's final collections skip them:
    # walking them cost each run 35-60 ms (python benchmarks/claims.py). Objects are still freed;
    # only finalizers of objects caught in reference cycles may not run, which Python never
    # promised at exit, and everything rulebook writes is closed explicitly.
    atexit.register(gc.freeze)
    import hydra
    from engine.config.hydra_errors import USER_ERRORS
    from engine.errors import UserError

    # Hydra's and OmegaConf's modules live as long as the process: later collections need not walk them.
    gc.freeze()
    # Hydra prints its own errors (exit 1) unless HYDRA_FULL_ERROR is set; with it set they reach
    # us to be reported as rulebook's. A user who set it themselves gets Hydra's full traceback.
    ours = not os.environ.get("HYDRA_FULL_ERROR")
    if ours:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    from engine.hydra_registry import register_hydra_plugins

    register_hydra_plugins()
    app = hydra.main(version_base="1.3", config_path=str(BUILTIN_CONF), config_name="config")(_task)
    sys.argv = [sys.argv[0], *argv]  # the job's name, run (run.log), is set in conf/config.yaml
    try:
        app()
    # a UserError here comes from a plugin of ours outside any job (the Optuna sweeper checking
    # its search space); a job's own UserError never gets here (engine.app reports it)
    except (*USER_ERRORS, UserError) as exc:
        if not ours or getattr(exc, IN_TASK, False):  # raised by the run itself: a bug, keep the traceback
            raise
        print(f"error: {error_line(exc, argv)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if ours:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    # A multirun runs every job even when some fail (each leaves error.json); the sweep's exit
    # code still says so, for a CI or a scheduler (engine/sweep/callbacks.py logged the line).
    from engine.sweep import callbacks

    if callbacks.FAILED_JOBS:
        raise SystemExit(1)


def main(argv: Sequence[str] | None = None, project: str | Path | None = None) -> None:
    """Entry point of the ``rulebook`` console script; ``run.py`` passes its own folder as project."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["init"]:
        from engine.project import init_main

        raise SystemExit(init_main(argv[1:]))
    if project is None:
        project = os.environ.get(PROJECT_ENV) or Path.cwd()
    run(argv, Path(project))


if __name__ == "__main__":
    main()
