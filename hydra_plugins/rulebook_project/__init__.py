"""Hydra search path plugin: a user project's ``conf/`` before rulebook's built-in one.

rulebook's primary config folder is always the built-in ``conf/`` (in a wheel:
``engine/_defaults/conf``). When the project (``engine.paths.project_root()``: the folder
``rulebook`` runs in) has a ``conf/`` of its own, it is put *before* the built-in one, so a
project's ``conf/strategy/mine.yaml`` adds an option, its ``conf/strategy/sma_cross.yaml``
replaces the built-in one, and every group it does not have comes from the built-ins.

A plugin, not ``hydra.searchpath``: that setting only appends (built-ins would win), and a plugin
applies to every composition in the process and in sweep workers (the project travels in the
``RULEBOOK_PROJECT`` environment variable), including the ``compose()`` calls of callbacks.
It acts only when the main config folder is rulebook's, so other Hydra apps are untouched.
"""
from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

PROVIDER = "rulebook-project"


class RulebookProjectSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from pathlib import Path

        from engine.paths import BUILTIN_CONF, config_dirs

        mains = [e for e in search_path.get_path() if e.provider == "main"]
        if not mains or not mains[0].path:
            return
        main = mains[0].path.removeprefix("file://")
        try:
            if Path(main).resolve() != BUILTIN_CONF.resolve():
                return  # another Hydra app, or a test composing its own folder
        except OSError:
            return
        for folder in config_dirs()[:-1]:  # the last one is the built-in conf/ itself
            search_path.prepend(PROVIDER, f"file://{folder}", anchor=SearchPathQuery(provider="main"))
