"""Errors that are the user's to fix: printed as one clear message, exit code 2, no traceback."""


class UserError(Exception):
    """Base of every error caused by input (config, rule files, data, command line)."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Every exception class that reports a user's mistake (imported lazily: no cycles)."""
    from engine.rules.errors import RuleError

    types: list[type[BaseException]] = [UserError, RuleError]
    try:
        from engine.market.validate import DataError

        types.append(DataError)
    except ImportError:  # the data layer may not define it
        pass
    return tuple(types)
