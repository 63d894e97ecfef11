"""rulebook's own Hydra plugins (the project search path, the Optuna sweeper), registered by class.

Hydra finds plugins by listing the ``hydra_plugins`` namespace package on ``sys.path``. An
installed wheel and the source tree (run.py's folder is on ``sys.path``) are listed; an editable
install (``pip install -e .``) is not: setuptools serves it through an import hook that
``pkgutil.iter_modules`` cannot list, so ``rulebook`` run in a user project from an editable
install silently ignored the project's ``conf/`` and could not select our sweeper. Registering the
classes directly works under every install; Hydra's registry keeps one entry per class.
"""
from __future__ import annotations


def register_hydra_plugins() -> None:
    from hydra.core.plugins import Plugins
    from hydra_plugins.rulebook_optuna_sweeper import RulebookOptunaSweeper
    from hydra_plugins.rulebook_project import RulebookProjectSearchPath

    plugins = Plugins.instance()
    for cls in (RulebookProjectSearchPath, RulebookOptunaSweeper):
        plugins.register(cls)
