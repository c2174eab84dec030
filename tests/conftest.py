"""Shared pytest hooks, and the one Docker client of a test session."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import docker
import pytest

from smtp_out import engine
from smtp_out.engine.networks import remove_leftovers


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, None]:
    """Expose each phase's report as item.rep_<phase>, so fixtures can print logs on failure."""
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    """The session's Docker client (no engine: the tests fail with the reason, never skip).
    Leftovers of earlier runs are swept once at the start, and this session's at the end unless
    SMTP_OUT_KEEP=1 (invoke integration-test --keep) asks to leave the test network up. One
    fixture for the whole session, so the Docker and integration suites never sweep each other's
    containers away mid-run."""
    c = engine.client()
    remove_leftovers(c)
    yield c
    if os.environ.get("SMTP_OUT_KEEP") != "1":
        remove_leftovers(c)
