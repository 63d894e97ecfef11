"""Config checks: Cerberus schemas, deprecated keys, cross-field sanity checks, secrets.

    from engine.config import check_config, ConfigProblem, ConfigReport
    report = check_config(cfg_dict, mode="backtest", env=os.environ)
    print(report.format()); report.raise_if_problems()
"""
from .check import check_config, effective_mode, emit_warnings
from .problems import ConfigError, ConfigProblem, ConfigReport
from .secrets import SecretFilter, find_secret_values, install_log_redaction, redact, scrub, secret_values

__all__ = [
    "check_config", "effective_mode", "emit_warnings", "ConfigError", "ConfigProblem", "ConfigReport",
    "SecretFilter", "find_secret_values", "install_log_redaction", "redact", "scrub", "secret_values",
]
