"""Which files the wheel holds (everything else is in pyproject.toml).

The built-in conf/, rules/ and reports/ stay at the top of the source tree, where the README and
the tests expect them, and the wheel carries them as data-only packages under ``engine._defaults``
(``engine/_defaults/conf/...`` once installed): setuptools' ``package_dir`` maps each one to its
source folder, so nothing is copied or generated at build time. ``engine.paths`` finds the
built-ins there when installed and next to the package in a checkout.
"""
from setuptools import find_namespace_packages, find_packages, setup

DEFAULTS = {f"engine._defaults.{name}": name for name in ("conf", "rules", "reports")}

setup(
    packages=[*find_packages(include=["engine", "engine.*"]), *DEFAULTS,
              *find_namespace_packages(include=["hydra_plugins.rulebook_*"])],
    package_dir=DEFAULTS,
    package_data={
        # here, not in pyproject.toml: a [tool.setuptools.package-data] table there replaces this one
        "engine": ["config/*.yaml", "live/console/*.html"],  # sanity checks, the dashboard page
        "engine._defaults.conf": ["*.yaml", "**/*.yaml"],
        "engine._defaults.rules": ["*.yaml", "**/*.yaml"],
        "engine._defaults.reports": ["*.j2", "static/*"],
    },
)
