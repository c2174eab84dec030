"""The override policy (entrypoint.d/policy.sh): what weakens signing, the From: policy or who may
relay is refused naming the variable (or the override file's line); a lower TLS floor or a wider
mynetworks starts only when opted in, with one WARNING line; every environment name is seen.

The end-to-end proofs (nothing unsigned at the sink, no open relay, the throttle measured) are in
tests/integration/test_overrides.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from smtp_out.engine.containers import exec_text, logs

from ..helpers import IMAGE_CONTEXT
from .conftest import Started
from .support import assert_stops_with

pytestmark = pytest.mark.docker

SIGNING = "is set by this image"
PINNED = "master.cf pins {} with -o for submission (port 587)"
WIDE = "is outside the private (RFC 1918) and loopback networks"
WEAK_TLS = "set SMTP_OUT_ALLOW_WEAK_TLS=yes to lower it on purpose"

#: case -> (POSTFIX_<name>, value, what the ERROR line says after "POSTFIX_<name>: ")
REFUSED: dict[str, tuple[str, str, str]] = {
    "no_milters": (
        "receive_override_options",
        "no_milters",
        "receive_override_options with no_milters is refused",
    ),
    "no_header_body_checks": (
        "receive_override_options",
        "no_unknown_recipient_checks, no_header_body_checks",
        "receive_override_options with no_header_body_checks is refused",
    ),
    "smtpd_milters-empty": ("smtpd_milters", "", f"smtpd_milters {SIGNING}"),
    "smtpd_milters-tcp": ("smtpd_milters", "inet:127.0.0.1:8891", f"smtpd_milters {SIGNING}"),
    "non_smtpd_milters": ("non_smtpd_milters", "", f"non_smtpd_milters {SIGNING}"),
    "smtpd_milter_maps": (
        "smtpd_milter_maps",
        "static:DISABLE",
        "smtpd_milter_maps='static:DISABLE' is refused",
    ),
    "milter_default_action": ("milter_default_action", "accept", f"milter_default_action {SIGNING}"),
    "internal_mail_filter_classes": (
        "internal_mail_filter_classes",
        "bounce",
        f"internal_mail_filter_classes {SIGNING}",
    ),
    "content_filter": (
        "content_filter",
        "smtp:[10.5.5.25]:25",
        "content_filter='smtp:[10.5.5.25]:25' is refused",
    ),
    "smtpd_proxy_filter": (
        "smtpd_proxy_filter",
        "127.0.0.1:10025",
        "smtpd_proxy_filter='127.0.0.1:10025' is refused",
    ),
    "header_checks": ("header_checks", "regexp:/etc/postfix/h", PINNED.format("header_checks")),
    "mime_header_checks": (
        "mime_header_checks",
        "regexp:/etc/postfix/h",
        PINNED.format("mime_header_checks"),
    ),
    "nested_header_checks": (
        "nested_header_checks",
        "regexp:/etc/postfix/h",
        PINNED.format("nested_header_checks"),
    ),
    "milter_header_checks": ("milter_header_checks", "", PINNED.format("milter_header_checks")),
    "body_checks": ("body_checks", "regexp:/etc/postfix/b", "body_checks='regexp:/etc/postfix/b' is refused"),
    "xclient": (
        "smtpd_authorized_xclient_hosts",
        "0.0.0.0/0",
        "smtpd_authorized_xclient_hosts='0.0.0.0/0' is refused",
    ),
    "xforward": (
        "smtpd_authorized_xforward_hosts",
        "10.0.0.0/8",
        "smtpd_authorized_xforward_hosts='10.0.0.0/8' is refused",
    ),
    "mynetworks-all": ("mynetworks", "0.0.0.0/0", f"mynetworks entry '0.0.0.0/0' {WIDE}"),
    "mynetworks-cgnat": (
        "mynetworks",
        "127.0.0.0/8, 100.64.0.0/10",
        f"mynetworks entry '100.64.0.0/10' {WIDE}",
    ),
    "mynetworks-public": (
        "mynetworks",
        "10.0.0.0/8 203.0.113.0/24",
        f"mynetworks entry '203.0.113.0/24' {WIDE}",
    ),
    "mynetworks-ipv6-all": ("mynetworks", "127.0.0.0/8 [::]/0", f"mynetworks entry '[::]/0' {WIDE}"),
    "mynetworks_style": ("mynetworks_style", "class", "mynetworks_style='class' is refused"),
    "relay_restrictions": ("smtpd_relay_restrictions", "permit", PINNED.format("smtpd_relay_restrictions")),
    "recipient_restrictions": (
        "smtpd_recipient_restrictions",
        "permit",
        PINNED.format("smtpd_recipient_restrictions"),
    ),
    "sender_restrictions": ("smtpd_sender_restrictions", "", PINNED.format("smtpd_sender_restrictions")),
    "peername_lookup": ("smtpd_peername_lookup", "yes", PINNED.format("smtpd_peername_lookup")),
    "smtpd_tls_mandatory_protocols": (
        "smtpd_tls_mandatory_protocols",
        ">=TLSv1",
        "smtpd_tls_mandatory_protocols='>=TLSv1' lets TLSv1 through, below TLSv1.2",
    ),
    "smtpd_tls_protocols": (
        "smtpd_tls_protocols",
        "!SSLv2, !SSLv3",
        "smtpd_tls_protocols='!SSLv2, !SSLv3' lets TLSv1 through, below TLSv1.2",
    ),
    "smtp_tls_protocols": (
        "smtp_tls_protocols",
        ">=TLSv1.1",
        "smtp_tls_protocols='>=TLSv1.1' lets TLSv1.1 through",
    ),
    "smtp_tls_mandatory_protocols": (
        "smtp_tls_mandatory_protocols",
        "!SSLv2,!SSLv3,!TLSv1",
        "smtp_tls_mandatory_protocols='!SSLv2,!SSLv3,!TLSv1' lets TLSv1.1 through",
    ),
    "smtpd_tls_ciphers": (
        "smtpd_tls_ciphers",
        "low",
        "smtpd_tls_ciphers='low' is a cipher grade below medium",
    ),
    "smtpd_tls_mandatory_ciphers": (
        "smtpd_tls_mandatory_ciphers",
        "export",
        "smtpd_tls_mandatory_ciphers='export' is a cipher grade below medium",
    ),
    "smtp_tls_ciphers": (
        "smtp_tls_ciphers",
        "null",
        "smtp_tls_ciphers='null' is a cipher grade below medium",
    ),
    "smtp_tls_mandatory_ciphers": (
        "smtp_tls_mandatory_ciphers",
        "low",
        "smtp_tls_mandatory_ciphers='low' is a cipher grade below medium",
    ),
    "tls_medium_cipherlist": (
        "tls_medium_cipherlist",
        "ALL:eNULL",
        "tls_medium_cipherlist='ALL:eNULL' replaces OpenSSL's cipher list",
    ),
    "unknown-transport": (
        "no-such-transport_destination_rate_delay",
        "1s",
        "unknown Postfix parameter(s): no-such-transport_destination_rate_delay",
    ),
    "unknown-parameter-of-a-transport": (
        "ms-throttle_no_such_parameter",
        "1",
        "unknown Postfix parameter(s): ms-throttle_no_such_parameter",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_override_that_weakens_a_guarantee_is_refused_naming_the_variable(
    smtp_out: Callable[..., Started], spool: Path, case: str
) -> None:
    name, value, message = REFUSED[case]
    s = smtp_out(wait=False, spool=spool, env={f"POSTFIX_{name}": value})
    assert_stops_with(s, f"POSTFIX_{name}: {message}", spool)
    if message.endswith("through, below TLSv1.2") or "cipher" in message:
        assert WEAK_TLS in logs(s.container)


def test_the_same_policy_holds_for_a_line_in_main_cf_override(
    smtp_out: Callable[..., Started], tmp_path: Path, spool: Path
) -> None:
    shipped = (IMAGE_CONTEXT / "etc/postfix/main.cf.override").read_text()
    f = tmp_path / "main.cf.override"
    f.write_text(shipped + "receive_override_options =\n    no_milters\n")
    line = len(shipped.splitlines()) + 1
    s = smtp_out(
        wait=False,
        spool=spool,
        extra_volumes={str(f): {"bind": "/etc/postfix/main.cf.override", "mode": "ro"}},
    )
    assert_stops_with(
        s,
        f"/etc/postfix/main.cf.override line {line}: receive_override_options with no_milters is refused",
        spool,
    )


def test_an_opt_in_switch_that_is_not_yes_or_no_is_refused(
    smtp_out: Callable[..., Started], spool: Path
) -> None:
    s = smtp_out(wait=False, spool=spool, env={"SMTP_OUT_ALLOW_WEAK_TLS": "true"})
    assert_stops_with(s, "SMTP_OUT_ALLOW_WEAK_TLS='true': give yes or no", spool)


def _warnings(s: Started) -> list[str]:
    return [ln for ln in logs(s.container).splitlines() if ln.startswith("[smtp-out] WARNING:")]


WARNED: dict[str, tuple[dict[str, str], str]] = {
    "wide-mynetworks": (
        {
            "POSTFIX_mynetworks": "127.0.0.0/8, 172.16.0.0/12, 100.64.1.0/24",
            "SMTP_OUT_ALLOW_WIDE_MYNETWORKS": "yes",
        },
        "[smtp-out] WARNING: mynetworks (from POSTFIX_mynetworks) includes 100.64.1.0/24, beyond the "
        "private and loopback networks: clients there may relay, and their mail is signed "
        "(SMTP_OUT_ALLOW_WIDE_MYNETWORKS=yes)",
    ),
    "tls-1.0": (
        {"POSTFIX_smtpd_tls_mandatory_protocols": ">=TLSv1", "SMTP_OUT_ALLOW_WEAK_TLS": "yes"},
        "[smtp-out] WARNING: smtpd_tls_mandatory_protocols='>=TLSv1' "
        "(from POSTFIX_smtpd_tls_mandatory_protocols) lets TLSv1 through, below TLSv1.2 "
        "(SMTP_OUT_ALLOW_WEAK_TLS=yes)",
    ),
    "low-ciphers": (
        {"POSTFIX_smtp_tls_ciphers": "low", "SMTP_OUT_ALLOW_WEAK_TLS": "yes"},
        "[smtp-out] WARNING: smtp_tls_ciphers='low' (from POSTFIX_smtp_tls_ciphers) is a cipher grade below "
        "medium (SMTP_OUT_ALLOW_WEAK_TLS=yes)",
    ),
    "outbound-cleartext": (
        {"POSTFIX_smtp_tls_security_level": "none"},
        "[smtp-out] WARNING: smtp_tls_security_level=none (from POSTFIX_smtp_tls_security_level): "
        "delivery on port 25 never uses TLS; the image default is may",
    ),
}


@pytest.mark.parametrize("case", sorted(WARNED))
def test_a_lowered_floor_starts_only_on_purpose_with_one_warning_line(
    smtp_out: Callable[..., Started], case: str
) -> None:
    env, warning = WARNED[case]
    s = smtp_out(env=env)
    assert _warnings(s) == [warning]


def test_an_allowed_override_starts_without_a_warning(smtp_out: Callable[..., Started]) -> None:
    """no_address_mappings and no_unknown_recipient_checks weaken neither signing nor relay."""
    s = smtp_out(env={"POSTFIX_receive_override_options": "no_address_mappings, no_unknown_recipient_checks"})
    assert _warnings(s) == []
    _, out = exec_text(s.container, "postconf -h receive_override_options")
    assert out.strip() == "no_address_mappings, no_unknown_recipient_checks"


def test_a_hyphenated_transport_parameter_from_the_environment_is_applied(
    smtp_out: Callable[..., Started],
) -> None:
    """bash drops environment names with a hyphen; the entrypoint reads them from the process."""
    s = smtp_out(env={"POSTFIX_ms-throttle_destination_rate_delay": "2s"})
    _, out = exec_text(
        s.container, "postconf -h ms-throttle_destination_rate_delay yahoo-throttle_destination_rate_delay"
    )
    assert out.split() == ["2s", "5s"]
