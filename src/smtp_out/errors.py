"""One base for every expected failure, so the tasks can report it in one line with its exit code."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class SmtpOutError(Exception):
    """An expected failure: `str(exc)` is one line that says what happened and what to do,
    `exit_code` is 1 (a failed check or refused operation) or 2 (bad usage, no engine), and
    `details` are lines worth showing before it (the end of a build log, say)."""

    exit_code = EXIT_FAILED

    @property
    def details(self) -> list[str]:
        return []


class UsageError(SmtpOutError):
    """A bad argument or option value."""

    exit_code = EXIT_USAGE
