"""The operations tasks against the real image: smoke-test and dkim-key."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from smtp_out import REPO_ROOT, mail, smoke
from smtp_out.containers import exec_text, logs, wait_for_health
from smtp_out.material import DkimKey, Material
from smtp_out.signatures import dkim_tags, verify

from .conftest import Started

pytestmark = pytest.mark.docker

OPENDKIM_DEPENDENT = {"OpenDKIM process", "OpenDKIM milter socket (8891)", "Healthcheck healthy"}


def invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


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
    assert "FAIL  Container running" in missing.stdout
    assert re.search(r"^=== \d+ passed, \d+ failed", missing.stdout, re.M)

    unreachable = invoke("smoke-test", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert unreachable.returncode == 2
    assert unreachable.stderr.strip().startswith("ERROR: cannot reach the Docker daemon")
    assert "Traceback" not in unreachable.stderr


def test_dkim_key_then_a_container_signs_with_it(
    smtp_out: Callable[..., Started], material: Material, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    made = invoke("dkim-key", "--domain", "feedsubscription.com", "--bits", "2048", "--out", str(keys_dir))
    assert made.returncode == 0, made.stderr
    private = keys_dir / "feedsubscription.com.private"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    txt = (keys_dir / "feedsubscription.com.txt").read_text()
    assert txt.startswith("mail._domainkey.feedsubscription.com. IN TXT")
    published = "".join(txt.split('"')[1::2])
    assert published in made.stdout.replace('" "', "")

    again = invoke("dkim-key", "--domain", "feedsubscription.com", "--out", str(keys_dir))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    assert private.read_bytes() != b""

    generated = Material(
        tmp_path, DkimKey(private.read_bytes(), b""), material.tls
    )  # keys_dir: tmp_path/keys
    generated.cert.parent.mkdir()
    generated.cert.write_bytes(material.tls.chain_pem)
    generated.cert_key.write_bytes(material.tls.key_pem)
    s = smtp_out(material=generated, env={"POSTFIX_defer_transports": "smtp"})
    sub = mail.submit(s.host, mail.message("reader@example.com"), ca=material.ca)
    rc, raw = exec_text(s.container, f"postcat -hbq {sub.queue_id}")
    assert rc == 0
    assert dkim_tags(raw.encode())["s"] == "mail"
    assert verify(raw.encode(), published)


def test_a_failed_build_names_the_failing_step_and_exits_non_zero(tmp_path: Path) -> None:
    ctx = tmp_path / "docker-services" / "broken"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM debian:bookworm-slim\nRUN true\nRUN echo about to fail && false\n")
    code = (
        "import sys; from pathlib import Path; from smtp_out import cli, engine, images\n"
        f"spec = images.ImageSpec('smtp-out-broken-test', Path({str(ctx)!r}))\n"
        "try:\n    images.build_all(engine.client(), cli.progress, [spec])\n"
        "except images.BuildFailed as exc:\n    print(exc, file=sys.stderr); sys.exit(1)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 1
    assert "smtp-out-broken-test: Step 3/3 : RUN echo about to fail && false" in r.stderr  # progress
    assert "failed at Step 3/3 : RUN echo about to fail && false" in r.stderr
    assert "returned a non-zero code: 1" in r.stderr
