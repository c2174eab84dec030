"""Bad input: one ERROR line naming the file, and the queue directory untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker.errors
import pytest

from smtp_out.engine.containers import logs
from smtp_out.material import Material, TlsMaterial

from .conftest import Started
from .support import assert_stops_with

pytestmark = pytest.mark.docker


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
    assert_stops_with(s, BAD_INPUTS[case], spool)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "myhostname = feedsubscription.com\nno_such_parameter = 1\n",
            "/etc/postfix/main.cf.override line 2: unknown Postfix parameter(s): no_such_parameter",
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
    assert_stops_with(s, message, spool)


def test_dkim_domain_follows_myhostname(smtp_out: Callable[..., Started], spool: Path) -> None:
    s = smtp_out(wait=False, spool=spool, env={"POSTFIX_myhostname": "other.example"})
    assert_stops_with(
        s, "/etc/opendkim/keys/other.example.private: DKIM key not found for other.example (myhostname", spool
    )


def test_unknown_postfix_environment_variable_stops(smtp_out: Callable[..., Started], spool: Path) -> None:
    s = smtp_out(wait=False, spool=spool, env={"POSTFIX_no_such_thing": "1"})
    assert_stops_with(s, "POSTFIX_no_such_thing: unknown Postfix parameter(s): no_such_thing", spool)


def test_bad_input_leaves_an_existing_queue_untouched(
    smtp_out: Callable[..., Started], material: Material, tmp_path: Path, spool: Path
) -> None:
    (spool / "deferred" / "A").mkdir(parents=True)
    msg = spool / "deferred" / "A" / "A1B2C3D4E5"
    msg.write_bytes(b"queue file")
    before = {p: (p.stat().st_mtime_ns, p.stat().st_uid) for p in spool.rglob("*")}
    s = smtp_out(wait=False, material=_bad_material(tmp_path / "m", material, "dkim-missing"), spool=spool)
    assert_stops_with(s, "DKIM key not found", spool, expect_empty=False)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_uid) for p in spool.rglob("*")} == before


BAD_ENVIRONMENT = {
    "injected-parameter": (
        {"POSTFIX_notify_classes": "bounce\nsmtpd_recipient_restrictions = permit"},
        "POSTFIX_notify_classes: the value contains a line break or another control character",
    ),
    "tz-path": ({"TZ": "../../../etc/passwd"}, "TZ=../../../etc/passwd: not a time zone name"),
    "tz-unknown": ({"TZ": "Mars/Olympus_Mons"}, "TZ=Mars/Olympus_Mons: not a time zone name"),
    "wait-command": (
        {"SMTP_OUT_MILTER_WAIT_SECONDS": "$(touch /tmp/pwned)"},
        "SMTP_OUT_MILTER_WAIT_SECONDS=\\$\\(touch\\ /tmp/pwned\\): not a whole number of seconds",
    ),
    "mynetworks": (
        {"POSTFIX_mynetworks": "127.0.0.0/8, 10.0.0.0/8, bogus"},
        "POSTFIX_mynetworks: mynetworks entry 'bogus' is not an address or network",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ENVIRONMENT))
def test_a_bad_environment_value_stops_naming_the_variable(
    smtp_out: Callable[..., Started], spool: Path, case: str
) -> None:
    env, message = BAD_ENVIRONMENT[case]
    s = smtp_out(wait=False, spool=spool, env=env)
    assert_stops_with(s, message, spool)
    with pytest.raises(docker.errors.NotFound):  # shell arithmetic never ran the command
        s.container.get_archive("/tmp/pwned")


def test_lowering_starttls_is_explicit_and_said_in_one_warning_line(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out(env={"POSTFIX_smtpd_tls_security_level": "may"})
    warnings = [ln for ln in logs(s.container).splitlines() if ln.startswith("[smtp-out] WARNING:")]
    assert warnings == [
        "[smtp-out] WARNING: smtpd_tls_security_level=may (from POSTFIX_smtpd_tls_security_level): "
        "submission on port 587 accepts mail without STARTTLS; the image default is encrypt"
    ]
