"""Waiting for log lines that trail the events they describe (no Docker: a stand-in container)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from docker.models.containers import Container

from smtp_out.engine.containers import NotReady, wait_for_log


class GrowingLog:
    """Stands in for a container whose log gains one line per read."""

    name = "stand-in"

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self.reads = 0

    def logs(self, **_: Any) -> bytes:
        self.reads += 1
        return "".join(f"{ln}\n" for ln in self._lines[: self.reads]).encode()


def test_waits_until_the_line_is_logged_and_returns_the_matches() -> None:
    log = GrowingLog(["connect", "ABC: client=x", "ABC: to=<a@b>, status=sent"])
    hits = wait_for_log(cast(Container, log), r"ABC: to=<.*status=sent", timeout=5, interval=0)
    assert hits == ["ABC: to=<a@b>, status=sent"]
    assert log.reads == 3


def test_counts_matching_lines() -> None:
    log = GrowingLog(["x: removed", "noise", "y: removed"])
    assert wait_for_log(cast(Container, log), r"removed$", count=2, timeout=5, interval=0) == [
        "x: removed",
        "y: removed",
    ]


def test_gives_up_after_the_timeout_naming_what_it_found() -> None:
    log = GrowingLog(["ABC: to=<a@b>, status=deferred"])
    with pytest.raises(NotReady, match=r"stand-in: 0 of 1 log lines match"):
        wait_for_log(cast(Container, log), r"status=sent", timeout=0.05, interval=0.01)
