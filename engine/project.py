"""``rulebook init DIR``: a new user project, to keep in its own repository and review like code.

It writes a copy of the built-in rule files (``rules/``: the files ops people edit), a ``conf/``
with one example experiment, a README saying what to edit and a ``.gitignore`` for what runs
write. Run ``rulebook`` inside it: its ``conf/`` comes before the built-in one on Hydra's search
path (a file there adds or replaces a config option, the rest stay built in) and ``rules_dir``,
caches, state and outputs resolve inside the project (``engine.paths``).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from engine.paths import BUILTIN_RULES

EXPERIMENT = """\
# @package _global_
# An experiment: a named set of overrides, run with `rulebook +experiment=mine`.
# Built-in ones: `rulebook +experiment=frictionless`, `+experiment=freqtrade` (see docs/config.md).
defaults:
  - override /risk: conservative

strategy:
  params:
    fast: 24
backtest:
  initial_cash: 25000
"""

README = """\
# {name}: a rulebook project

Run `rulebook` here (no argument: a backtest of `sma_cross` on the built-in sample market);
it takes the same overrides as the engine's `run.py`, e.g. `rulebook strategy=momentum risk=aggressive`.
Outputs land in `outputs/<date>/<time>/` (`report.html`, `results.json`, `trades.csv`, ...).

What to edit:

| path | what |
|---|---|
| `rules/` | the rule files every run reads (`rules_dir: rules`): `regime.yaml`, `universe.yaml`, `risk.yaml`, `execution.yaml`, `strategies/*.yaml`, `products.yaml`; delete one you do not change and the built-in file of that name is read instead |
| `conf/` | your Hydra config options; they come before the built-in ones. A new `conf/strategy/mine.yaml` is `strategy=mine`; a file with a built-in name (`conf/risk/balanced.yaml`) replaces it; `conf/experiment/*.yaml` are named override sets (`rulebook +experiment=mine`) |

Every group you do not add here (`exchange`, `data`, `mode`, `live`, `report`, ...) is rulebook's
built-in one: `rulebook --cfg job` prints the composed config, `rulebook mode=validate` checks it.
Relative paths (`rules_dir`, `data.path`, `data.cache_dir`, `live.state_dir`) are relative to this folder.
"""

GITIGNORE = "outputs/\nmultirun/\n.cache/\nstate/\n"


class ProjectExistsError(ValueError):
    """``rulebook init`` into a folder that already holds a project's files."""


def init_project(target: str | Path) -> Path:
    """Write a new project into ``target`` (created if needed); returns its resolved path."""
    root = Path(target).expanduser().resolve()
    taken = [p.name for p in (root / "conf", root / "rules", root / "README.md") if p.exists()]
    if taken:
        raise ProjectExistsError(f"{root} already holds {', '.join(taken)}; expected a new or empty folder "
                                 f"(rulebook init never overwrites files)")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(BUILTIN_RULES, root / "rules", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (root / "conf" / "experiment").mkdir(parents=True)
    (root / "conf" / "experiment" / "mine.yaml").write_text(EXPERIMENT, encoding="utf-8")
    (root / "README.md").write_text(README.format(name=root.name), encoding="utf-8")
    if not (root / ".gitignore").exists():
        (root / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    return root


def init_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rulebook init", description="Write a new rulebook project into DIR.")
    parser.add_argument("dir", help="the project folder (created if missing; must not hold conf/, rules/ or README.md)")
    args = parser.parse_args(argv)
    try:
        root = init_project(args.dir)
    except (ProjectExistsError, OSError) as exc:
        detail = f"cannot write {exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else exc
        print(f"error: {detail}", file=sys.stderr)
        return 2
    print(f"rulebook project written to {root}\n  cd {root} && rulebook        # backtest with this project's rules")
    return 0
