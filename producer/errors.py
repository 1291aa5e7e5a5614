"""The producer's exit codes and the one error type that means "the user gave bad input"."""

from __future__ import annotations

EXIT_OK = 0
EXIT_SAMPLE_ERRORS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2, no traceback."""


def _usage_errors() -> tuple[type[Exception], ...]:
    from batt_tasks.config import ConfigError
    from batt_tasks.loader import BattLoadError

    return (UsageError, BattLoadError, ConfigError)


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; the run stops, keeps what is written and exits 130."""


USAGE_ERRORS: tuple[type[Exception], ...] = _usage_errors()
"""Every exception whose one-line message is the user's to act on (exit code 2)."""


class StopRun(Exception):
    """The run stops early (``--max-errors``, or every early sample failed alike): exit code 1, results kept."""
