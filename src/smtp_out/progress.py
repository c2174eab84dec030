"""Progress lines: the one type of the callback that long operations report their steps to.

The tasks pass `cli.progress` (a line on stderr); library callers and tests pass `quiet`.
"""

from __future__ import annotations

from collections.abc import Callable

#: Called with one line for people per step of a long operation.
Progress = Callable[[str], None]


def quiet(line: str) -> None:
    """A Progress that shows nothing."""
