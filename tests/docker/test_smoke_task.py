"""invoke smoke-test against the real image: every check, the OpenDKIM-dependent ones, JSON and exit codes."""

from __future__ import annotations

import contextlib
import json
import re
import smtplib
from collections.abc import Callable

import docker
import pytest

from smtp_out import mail
from smtp_out.checks import Verdict
from smtp_out.engine.containers import exec_text, logs, wait_for_health, wait_for_log
from smtp_out.engine.polling import poll
from smtp_out.material import Material
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
    assert len(report.results) == 22
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


#: Deliveries of queued mail through Postfix's error(8) agent in retry mode (deferred, logged as
#: postfix/error). smtpd would refuse new mail for it at RCPT, so it is set after a deferral.
RETRY_EVERYTHING = (
    "postconf -e default_transport=retry:suspended-by-the-test"
    ' && touch -d "@$(($(date +%s) - 60))" /etc/postfix/main.cf && postfix reload'
)


def _tls_garbage(host: str) -> None:
    """STARTTLS, then HTTP instead of a TLS handshake: smtpd logs `warning: TLS library problem:
    error:0A00009C:SSL routines::http request` (a warning that quotes an OpenSSL error)."""
    with smtplib.SMTP(host, 587, timeout=10) as smtp:
        smtp.ehlo("client.test")
        assert smtp.docmd("STARTTLS")[0] == 220
        sock = smtp.sock
        assert sock is not None
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        with contextlib.suppress(OSError):
            sock.recv(1024)


def test_smoke_test_warns_on_a_warning_and_passes_a_deferral(
    client: docker.DockerClient, smtp_out: Callable[..., Started], material: Material
) -> None:
    """The log rules on a live relay: deferred deliveries are no error, by the smtp client (no
    DNS on the --internal network) or by Postfix's `error` agent (`postfix/error[..]: ...
    status=deferred`), and a warning is reported as WARN, not as a failure."""
    s = smtp_out(health_interval_s=1)
    wait_for_health(s.container, "healthy", timeout=20)
    first = mail.submit(s.host, mail.message("reader@example.com"), ca=material.ca)
    wait_for_log(
        s.container, rf"postfix/smtp\[\d+\]: {first.queue_id}: to=<reader@example.com>.*status=deferred"
    )
    rc, said = exec_text(s.container, RETRY_EVERYTHING)
    assert rc == 0, said
    by_error_agent = rf"postfix/error\[\d+\]: {first.queue_id}: to=<reader@example.com>.*status=deferred"

    def flushed() -> bool | None:  # flush until the reloaded qmgr takes the message to error(8)
        exec_text(s.container, "postqueue -f")
        return True if re.search(by_error_agent, logs(s.container)) else None

    poll(flushed, timeout=30, interval=1, seen=lambda: "no postfix/error deferral")
    _tls_garbage(s.host)
    wait_for_log(s.container, r"smtpd\[\d+\]: warning: TLS library problem")

    report = smoke.run(client, str(s.container.name), 587, s.host)
    verdicts = {r.name: r.verdict for r in report.results}
    assert verdicts["No errors in logs since boot"] is Verdict.PASS
    assert verdicts["No warnings in logs since boot"] is Verdict.WARN
    assert report.ok and [r.name for r in report.results if r.verdict is Verdict.WARN] == [
        "No warnings in logs since boot"
    ]
    out = invoke("smoke-test", "--container", str(s.container.name), "--host", s.host, "--port", "587")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARN  No warnings in logs since boot" in out.stdout
