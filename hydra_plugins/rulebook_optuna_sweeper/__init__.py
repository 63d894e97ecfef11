"""Hydra accepts plugins only from the ``hydra_plugins`` namespace package: this is where it finds
rulebook's Optuna sweeper (the code is engine/sweep/optuna_sweeper.py)."""
from engine.sweep.optuna_sweeper import OptunaSweeper


class RulebookOptunaSweeper(OptunaSweeper):
    """``hydra/sweeper=rulebook_optuna`` (conf/hydra/sweeper/rulebook_optuna.yaml)."""
