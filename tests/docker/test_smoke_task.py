"""invoke smoke-test against the real image: every check, the OpenDKIM-dependent ones, JSON and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable

import docker
import pytest

from smtp_out.engine.containers import exec_text, logs, wait_for_health
from smtp_out.ops import smoke

from ..helpers import invoke
from .conftest import Started

pytestmark = pytest.mark.docker

OPENDKIM_DEPENDENT = {"OpenDKIM process", "OpenDKIM milter socket", "Healthcheck healthy"}


def test_smoke_test_passes_every_check_on_a_healthy_container(
    client: docker.DockerClient, smtp_out: Callable[..., Started]
) -> None:
    s = smtp_out(health_interval_s=1)
    wait_for_health(s.container, "healthy", timeout=20)
    report = smoke.run(client, str(s.container.name), 587, s.host)
    assert [r.name for r in report.failed] == []
    assert len(report.results) == 17
    assert "improper command pipelining" not in logs(s.container)


def test_smoke_test_fails_exactly_the_checks_that_need_opendkim(
    client: docker.DockerClient, smtp_out: Callable[..., Started]
) -> None:
    s = smtp_out(health_interval_s=1)
    wait_for_health(s.container, "healthy", timeout=20)
    exec_text(s.container, "pkill -x opendkim")
    wait_for_health(s.container, "unhealthy", timeout=20)
    report = smoke.run(client, str(s.container.name), 587, s.host)
    assert {r.name for r in report.failed} == OPENDKIM_DEPENDENT


def test_smoke_test_cli_reports_json_and_exit_codes(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out(health_interval_s=1)
    wait_for_health(s.container, "healthy", timeout=20)
    ok = invoke(
        "smoke-test", "--container", str(s.container.name), "--host", s.host, "--port", "587", "--json"
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    data = json.loads(ok.stdout)
    assert data["ok"] is True and data["failed"] == 0

    missing = invoke("smoke-test", "--container", "no-such-container", "--host", s.host, "--port", "587")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.splitlines() == [
        "ERROR: no container named 'no-such-container' (docker ps -a lists the containers)"
    ]

    unreachable = invoke("smoke-test", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert unreachable.returncode == 2
    assert unreachable.stderr.strip().startswith("ERROR: cannot reach the Docker daemon")
    assert "Traceback" not in unreachable.stderr
