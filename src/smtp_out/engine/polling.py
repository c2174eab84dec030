"""The one bounded wait: poll a probe until it yields a value, or give up with what it saw."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class NotReady(TimeoutError):
    """What was waited for did not happen within the deadline; the message says what was seen."""


def poll(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float,
    seen: Callable[[], str],
) -> T:
    """Call `probe` every `interval` seconds until it returns something other than None, and
    return that. After `timeout` seconds raise NotReady(seen()). An exception from the probe
    ends the wait (a container that exited, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise NotReady(seen())
        time.sleep(interval)
