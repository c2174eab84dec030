"""The smtp-out image, built and run for real (issue: points 1-12 of the image)."""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from docker.models.networks import Network

from smtp_out import mail
from smtp_out.containers import exec_text, logs, read_banner, wait_for_exit, wait_for_health, wait_for_log
from smtp_out.material import Material, TlsMaterial
from smtp_out.signatures import SIGNED_LOG_LINE, dkim_tags, verify

from .conftest import Started

pytestmark = pytest.mark.docker

HOLD = {"POSTFIX_defer_transports": "smtp"}  # keep submitted mail in the queue, deliver nothing
BAD_LOG = ("warning", "error", "fatal", "panic")


def queued(started: Started, queue_id: str) -> bytes:
    rc, out = exec_text(started.container, f"postcat -hbq {queue_id}")
    assert rc == 0, out
    return out.encode()


def refusal_code(host: str, material: Material) -> int:
    """The SMTP code with which a submission is refused, at whatever stage (0 if accepted)."""
    try:
        mail.submit(host, mail.message("reader@example.com"), ca=material.ca)
    except smtplib.SMTPRecipientsRefused as exc:
        return int(next(iter(exc.recipients.values()))[0])
    except smtplib.SMTPResponseException as exc:
        return int(exc.smtp_code)
    return 0


def test_greets_with_220_on_587(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out()
    assert read_banner(s.host, 587).startswith("220 feedsubscription.com ESMTP")


def test_starttls_verifies_against_the_mounted_chain(
    smtp_out: Callable[..., Started], material: Material
) -> None:
    s = smtp_out()
    # verify the name in the certificate (feedsubscription.com), not the address dialled
    with mail.Client(s.host, 587, timeout=10, tls_hostname="feedsubscription.com") as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        code, _ = smtp.starttls(context=mail.tls_context(material.ca))
        assert code == 220
        sock = smtp.sock
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("subnet", ["172.30.40.0/24", "192.168.240.0/24", "10.5.5.0/24"])
def test_mail_from_every_mynetworks_range_is_queued_signed(
    smtp_out: Callable[..., Started], network: Callable[..., Network], material: Material, subnet: str
) -> None:
    """The host submits as the network's gateway: 172.30.40.1 and 192.168.240.1 are inside
    mynetworks but outside the shipped TrustedHosts (10.5.5.0/24); all must be signed."""
    s = smtp_out(net=network(subnet), env=HOLD)
    sub = mail.submit(s.host, mail.message("reader@example.com"), ca=material.ca)
    assert sub.code == 250 and sub.queue_id
    raw = queued(s, sub.queue_id)
    tags = dkim_tags(raw)
    assert tags.get("d") == "feedsubscription.com"
    assert tags.get("s") == "mail"
    assert tags.get("c") == "relaxed/simple"
    assert tags.get("a") == "rsa-sha256"
    assert verify(raw, material.dkim.txt_value), "dkimpy rejects the signature"
    wait_for_log(s.container, rf"{sub.queue_id}: {SIGNED_LOG_LINE}")


def test_client_outside_mynetworks_gets_a_permanent_relay_rejection(
    smtp_out: Callable[..., Started], network: Callable[..., Network], material: Material
) -> None:
    s = smtp_out(net=network("100.64.7.0/24"), env=HOLD)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        mail.submit(s.host, mail.message("reader@example.com"), ca=material.ca)
    code, reply = next(iter(err.value.recipients.values()))
    assert code == 554 and b"Relay access denied" in reply
    _, out = exec_text(s.container, "postqueue -j")
    assert out.strip() == ""


def test_restarts_leave_main_cf_as_after_the_first_start(
    client: docker.DockerClient, smtp_out: Callable[..., Started]
) -> None:
    s = smtp_out()
    first = exec_text(s.container, "cat /etc/postfix/main.cf; cat /etc/hosts; postconf -n")[1]
    for _ in range(2):
        s.container.restart(timeout=10)
        from smtp_out.containers import wait_for_banner

        wait_for_banner(s.container, s.host)
    again = exec_text(s.container, "cat /etc/postfix/main.cf; cat /etc/hosts; postconf -n")[1]
    assert again == first
    assert again.count("10.5.5.100 app") == 1
    assert first.count("myhostname = feedsubscription.com") == 2  # main.cf line + postconf -n


def test_ipv6_disabled_boot_is_warning_free_and_ipv4_only(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out()  # started with net.ipv6.conf.all.disable_ipv6=1, as production
    _, out = exec_text(
        s.container,
        "cat /proc/sys/net/ipv6/conf/all/disable_ipv6; postconf -h inet_protocols smtp_address_preference",
    )
    assert out.split() == ["1", "ipv4", "ipv4"]
    time.sleep(0.5)
    bad = [ln for ln in logs(s.container).splitlines() if any(w in ln.lower() for w in BAD_LOG)]
    assert bad == []
    assert "Cannot assign requested address" not in logs(s.container)


def test_read_only_key_mount_gets_a_private_copy_for_opendkim(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out(keys_read_only=True)
    _, out = exec_text(
        s.container,
        "touch /etc/opendkim/keys/x 2>&1; stat -c '%U %a' /run/opendkim/keys/feedsubscription.com.private",
    )
    assert "Read-only file system" in out
    assert out.strip().endswith("opendkim 600")


def test_postfix_environment_applies_after_the_override(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out(env={"POSTFIX_message_size_limit": "2048000", "POSTFIX_notify_classes": "resource,software"})
    _, out = exec_text(s.container, "postconf -h message_size_limit notify_classes myhostname")
    assert out.split() == ["2048000", "resource,software", "feedsubscription.com"]


def test_throttled_transports_and_their_pace(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out()
    _, out = exec_text(
        s.container,
        "for d in outlook.com hotmail.co.uk msn.com yahoo.com bigpond.com comcast.net gmail.com; do "
        "printf '%s=%s\\n' $d \"$(postmap -q $d texthash:/etc/postfix/transport)\"; done; "
        "postconf -h ms-throttle_destination_concurrency_limit ms-throttle_destination_rate_delay "
        "yahoo-throttle_destination_rate_delay comcast-throttle_destination_rate_delay",
    )
    lines = out.split()
    assert lines[:7] == [
        "outlook.com=ms-throttle:",
        "hotmail.co.uk=ms-throttle:",
        "msn.com=ms-throttle:",
        "yahoo.com=yahoo-throttle:",
        "bigpond.com=yahoo-throttle:",
        "comcast.net=comcast-throttle:",
        "gmail.com=",
    ]
    assert lines[7:] == ["1", "5s", "5s", "15s"]


def test_healthy_then_unhealthy_and_tempfail_when_opendkim_dies(
    smtp_out: Callable[..., Started], material: Material
) -> None:
    s = smtp_out(env=HOLD, health_interval_s=1)
    wait_for_health(s.container, "healthy", timeout=20)
    exec_text(s.container, "pkill -x opendkim; sleep 0.3")
    # milter_default_action=tempfail: the app is told to try later (4xx), nothing leaves unsigned
    assert 400 <= refusal_code(s.host, material) < 500
    wait_for_health(s.container, "unhealthy", timeout=20)
    rc, out = exec_text(s.container, "/usr/local/bin/healthcheck")
    assert rc == 1 and "opendkim not running" in out
    assert exec_text(s.container, "postqueue -j")[1].strip() == ""


# --- bad input: one ERROR line naming the file, the queue untouched ---------------------


def _bad_material(tmp: Path, material: Material, case: str) -> Material:
    m = Material(tmp, material.dkim, material.tls)
    m.keys_dir.mkdir(parents=True)
    m.cert.parent.mkdir(parents=True)
    m.cert.write_bytes(material.tls.chain_pem)
    m.cert_key.write_bytes(material.tls.key_pem)
    (m.keys_dir / "feedsubscription.com.private").write_bytes(material.dkim.private_pem)
    if case == "dkim-missing":
        (m.keys_dir / "feedsubscription.com.private").unlink()
    elif case == "dkim-garbage":
        (m.keys_dir / "feedsubscription.com.private").write_text("not a key\n")
    elif case == "cert-missing":
        m.cert.unlink()
        m.cert.mkdir()  # a bind mount of a missing file appears as a directory
    elif case == "key-missing":
        m.cert_key.unlink()
        m.cert_key.mkdir()
    elif case == "mismatch":
        m.cert_key.write_bytes(TlsMaterial.issue("feedsubscription.com").key_pem)
    return m


BAD_INPUTS = {
    "dkim-missing": "/etc/opendkim/keys/feedsubscription.com.private: DKIM key not found",
    "dkim-garbage": "/etc/opendkim/keys/feedsubscription.com.private: not a readable PEM private key",
    "cert-missing": "/etc/postfix/cert/smtp.cert: TLS certificate not found",
    "key-missing": "/etc/postfix/cert/smtp.key: TLS key not found",
    "mismatch": "/etc/postfix/cert/smtp.key: does not match the certificate in /etc/postfix/cert/smtp.cert",
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_material_stops_with_one_error_line(
    smtp_out: Callable[..., Started], material: Material, tmp_path: Path, spool: Path, case: str
) -> None:
    s = smtp_out(wait=False, material=_bad_material(tmp_path / "m", material, case), spool=spool)
    _assert_stops_with(s, BAD_INPUTS[case], spool)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "myhostname = feedsubscription.com\nno_such_parameter = 1\n",
            "/etc/postfix/main.cf.override: unknown Postfix parameter(s): no_such_parameter",
        ),
        (
            "myhostname = feedsubscription.com\nthis line is broken\n",
            "/etc/postfix/main.cf.override line 2: expected 'parameter = value'",
        ),
    ],
)
def test_broken_override_stops_with_one_error_line(
    smtp_out: Callable[..., Started], tmp_path: Path, spool: Path, override: str, message: str
) -> None:
    f = tmp_path / "main.cf.override"
    f.write_text(override)
    s = smtp_out(
        wait=False,
        spool=spool,
        extra_volumes={str(f): {"bind": "/etc/postfix/main.cf.override", "mode": "ro"}},
    )
    _assert_stops_with(s, message, spool)


def test_dkim_domain_follows_myhostname(smtp_out: Callable[..., Started], spool: Path) -> None:
    s = smtp_out(wait=False, spool=spool, env={"POSTFIX_myhostname": "other.example"})
    _assert_stops_with(s, "/etc/opendkim/SigningTable: no entry for other.example (myhostname)", spool)


def test_unknown_postfix_environment_variable_stops(smtp_out: Callable[..., Started], spool: Path) -> None:
    s = smtp_out(wait=False, spool=spool, env={"POSTFIX_no_such_thing": "1"})
    _assert_stops_with(
        s, "POSTFIX_* environment variables: unknown Postfix parameter(s): no_such_thing", spool
    )


def test_bad_input_leaves_an_existing_queue_untouched(
    smtp_out: Callable[..., Started], material: Material, tmp_path: Path, spool: Path
) -> None:
    (spool / "deferred" / "A").mkdir(parents=True)
    msg = spool / "deferred" / "A" / "A1B2C3D4E5"
    msg.write_bytes(b"queue file")
    before = {p: (p.stat().st_mtime_ns, p.stat().st_uid) for p in spool.rglob("*")}
    s = smtp_out(wait=False, material=_bad_material(tmp_path / "m", material, "dkim-missing"), spool=spool)
    _assert_stops_with(s, "DKIM key not found", spool, expect_empty=False)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_uid) for p in spool.rglob("*")} == before


def _assert_stops_with(s: Started, message: str, spool: Path, expect_empty: bool = True) -> None:
    started = time.monotonic()
    code = wait_for_exit(s.container, timeout=20)
    assert time.monotonic() - started < 10
    assert code != 0
    out = logs(s.container)
    errors = [ln for ln in out.splitlines() if ln.startswith("[smtp-out] ERROR:")]
    assert len(errors) == 1, out
    assert message in errors[0], errors[0]
    if expect_empty:
        assert list(spool.iterdir()) == [], "the queue directory was written before the input was validated"


def test_postfix_is_pid_1_and_stops_cleanly(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out()
    assert exec_text(s.container, "cat /proc/1/comm")[1].strip() == "master"
    started = time.monotonic()
    s.container.stop(timeout=10)
    assert time.monotonic() - started < 5  # SIGTERM reached Postfix: no 10 s kill timeout
    s.container.reload()
    assert s.container.attrs["State"]["ExitCode"] == 0
