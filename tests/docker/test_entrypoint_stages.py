"""The entrypoint inside the image: any command but the default runs as given (no mounts, no
daemon, no queue directory touched), and the stages that need Postfix's or OpenDKIM's tools and
users run alone against a temporary root (their host-side tests are tests/unit/test_entrypoint_*)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

import docker
import docker.errors
import pytest

from smtp_out import LABEL
from smtp_out.engine.containers import unique
from smtp_out.material import Material
from smtp_out.ops.launch import SmtpOutOptions

pytestmark = pytest.mark.docker

SOURCE = "source /usr/local/bin/entrypoint.sh"


def run(
    client: docker.DockerClient,
    image: str,
    command: list[str],
    volumes: Mapping[str, Mapping[str, str]] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """`docker run --rm IMAGE COMMAND` (through the image's entrypoint, no network): exit code and output."""
    container = client.containers.run(
        image, command, detach=True, name=unique("smtp-out-stage"), labels={LABEL: "1"},
        network_mode="none", volumes={k: dict(v) for k, v in (volumes or {}).items()},
        environment=dict(env or {}),
    )  # fmt: skip
    try:
        code = int(container.wait(timeout=60)["StatusCode"])
        return code, bytes(container.logs(stdout=True, stderr=True)).decode()
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


def stage(client: docker.DockerClient, image: str, script: str, **kw: object) -> tuple[int, str]:
    return run(client, image, ["bash", "-c", f"set -euo pipefail; {script}"], **kw)  # type: ignore[arg-type]


# --- any other command -----------------------------------------------------------------------


def test_another_command_prints_the_host_name_with_nothing_mounted(
    client: docker.DockerClient, image: str
) -> None:
    assert run(client, image, ["postconf", "-h", "myhostname"]) == (0, "feedsubscription.com\n")


def test_another_command_sees_the_shipped_configuration(client: docker.DockerClient, image: str) -> None:
    code, out = run(client, image, ["postconf", "-n"])
    assert code == 0, out
    for line in (
        "smtpd_milters = unix:/opendkim/opendkim.sock",
        "milter_default_action = tempfail",
        "smtpd_tls_security_level = encrypt",
        "ms-throttle_destination_rate_delay = 5s",
    ):
        assert line in out.splitlines()


def test_another_command_starts_no_daemon_and_never_touches_the_queue(
    client: docker.DockerClient, image: str, spool: Path
) -> None:
    (spool / "deferred").mkdir()
    before = sorted((p, p.stat().st_mtime_ns) for p in spool.rglob("*"))
    code, out = run(
        client, image, ["bash", "-c", "cat /proc/1/comm; ps -e -o comm= | sort -u | tr '\\n' ' '"],
        volumes={str(spool): {"bind": "/var/spool/postfix", "mode": "rw"}},
        env={"POSTFIX_myhostname": "not-applied.example"},
    )  # fmt: skip
    assert code == 0, out
    first, processes = out.splitlines()
    assert first == "bash"  # exec "$@": the command itself is PID 1
    assert processes.split() == ["bash", "ps", "sort", "tr"]  # no master, opendkim or syslogd
    assert sorted((p, p.stat().st_mtime_ns) for p in spool.rglob("*")) == before
    assert "[smtp-out]" not in out


# --- the stages, alone, against a temporary root --------------------------------------------

ROOT = "/tmp/root"
COPY_CONF = f"mkdir -p {ROOT}/etc && cp -a /etc/postfix {ROOT}/etc/ && cp -a /etc/opendkim {ROOT}/etc/"


def test_configuration_writes_main_cf_under_conf_dir_only(client: docker.DockerClient, image: str) -> None:
    code, out = stage(
        client, image,
        f"{COPY_CONF}; before=$(md5sum /etc/postfix/main.cf); CONF_DIR={ROOT}/etc/postfix; {SOURCE}; "
        "configure; "
        "postconf -c $CONF_DIR -h message_size_limit ms-throttle_destination_rate_delay smtpd_milters; "
        "ls $CONF_DIR/submission_header_checks; "
        '[ "$(md5sum /etc/postfix/main.cf)" = "$before" ] && echo same',
        env={"POSTFIX_message_size_limit": "2048000", "POSTFIX_ms-throttle_destination_rate_delay": "2s"},
    )  # fmt: skip
    assert code == 0, out
    assert out.splitlines() == [
        "2048000",
        "2s",
        "unix:/opendkim/opendkim.sock",
        f"{ROOT}/etc/postfix/submission_header_checks",
        "same",
    ]


def test_configuration_refuses_an_unknown_transport_parameter(
    client: docker.DockerClient, image: str
) -> None:
    code, out = stage(
        client, image, f"{COPY_CONF}; CONF_DIR={ROOT}/etc/postfix; {SOURCE}; configure",
        env={"POSTFIX_ms-throtle_destination_rate_delay": "2s"},
    )  # fmt: skip
    assert code == 1
    assert out.strip() == (
        "[smtp-out] ERROR: POSTFIX_ms-throtle_destination_rate_delay: unknown Postfix parameter(s): "
        "ms-throtle_destination_rate_delay (a main.cf parameter, or <transport>_<parameter> for a transport "
        "master.cf defines; see postconf(5))"
    )


def test_dkim_prepares_opendkim_under_a_temporary_root(client: docker.DockerClient, image: str) -> None:
    code, out = stage(
        client, image,
        f"{COPY_CONF}; mkdir -p {ROOT}/etc/opendkim/keys; "
        f"openssl genrsa -out {ROOT}/etc/opendkim/keys/example.org.private 1024 2>/dev/null; "
        f"DKIM_DIR={ROOT}/etc/opendkim DKIM_RUN={ROOT}/run/opendkim DKIM_PID_DIR={ROOT}/run/pid; {SOURCE}; "
        "DOMAIN=example.org MYNETWORKS='127.0.0.0/8 10.0.0.0/8 [::1]/128'; check_dkim; prepare_opendkim; "
        "cd $DKIM_RUN; stat -c '%U %a %n' keys/example.org.private; grep -v '^#' KeyTable SigningTable; "
        "grep -c . TrustedHosts; grep -x '::1/128' TrustedHosts; "
        "grep -E '^(Socket|SigningTable)' opendkim.conf",
    )  # fmt: skip
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "opendkim 600 keys/example.org.private"
    key = f"{ROOT}/run/opendkim/keys/example.org.private"
    assert lines[1] == f"KeyTable:mail._domainkey.example.org\texample.org:mail:{key}"
    assert lines[2:5] == [
        "SigningTable:*@example.org\tmail._domainkey.example.org",
        "SigningTable:*@*.example.org\tmail._domainkey.example.org",
        "SigningTable:*\tmail._domainkey.example.org",
    ]
    assert lines[6] == "::1/128"
    assert lines[7:] == [
        "Socket                  local:/var/spool/postfix/opendkim/opendkim.sock",
        f"SigningTable            refile:{ROOT}/run/opendkim/SigningTable",
    ]


def test_spool_prepares_a_fresh_queue_directory_idempotently(client: docker.DockerClient, image: str) -> None:
    show = "find $SPOOL -mindepth 1 -maxdepth 1 -printf '%f %u %g %m\\n' | sort"
    code, out = stage(
        client, image,
        f"SPOOL={ROOT}/spool; {SOURCE}; read_postfix_settings; read_queue_dirs; prepare_spool; {show}; "
        f"echo ---; prepare_spool; {show}",
    )  # fmt: skip
    assert code == 0, out
    first, again = out.split("---\n")
    assert "[smtp-out] Refreshing time zone data in the Postfix chroot" in first
    rows = [ln for ln in first.splitlines() if not ln.startswith("[smtp-out]")]
    assert "active postfix root 700" in rows
    assert "maildrop postfix postdrop 730" in rows
    assert "pid root root 755" in rows
    assert "opendkim opendkim postfix 750" in rows
    assert "etc root root 755" in rows
    assert again.splitlines() == rows  # nothing to refresh or fix the second time


def test_daemons_start_the_log_relay_and_opendkim(
    client: docker.DockerClient, image: str, material: Material
) -> None:
    volumes = SmtpOutOptions(material=material).volumes()
    code, out = stage(
        client, image,
        f"{SOURCE}; check_environment; configure; read_queue_dirs; check_dkim; prepare_opendkim; "
        "prepare_spool; start_log_relay; start_opendkim; "
        "unix_listening $MILTER_SOCKET && echo listening; running opendkim && echo opendkim; "
        "running master || echo no-master",
        volumes=volumes,
    )  # fmt: skip
    assert code == 0, out
    assert (
        "[smtp-out] opendkim listens on /var/spool/postfix/opendkim/opendkim.sock "
        "(Postfix: unix:/opendkim/opendkim.sock)"
    ) in out
    assert {"listening", "opendkim", "no-master"} <= set(out.splitlines())
