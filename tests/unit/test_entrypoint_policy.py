"""Stage policy.sh on the host: the override policy judged on the settings (before main.cf is
written) and on effective values, against a temporary CONF_DIR with the image's master.cf."""

from __future__ import annotations

from pathlib import Path

import pytest

from .entrypoint_shell import errors, run_stage, warnings
from .test_entrypoint_configuration import conf_dir

POLICY = "check_environment; collect_settings"


def judge(tmp_path: Path, env: dict[str, str], override: str | None = None) -> tuple[int, list[str]]:
    r = run_stage(POLICY, env, {"CONF_DIR": str(conf_dir(tmp_path, override))})
    return r.returncode, errors(r)


@pytest.mark.parametrize(
    ("name", "value", "verdict"),
    [
        ("receive_override_options", "no_milters", "receive_override_options with no_milters is refused"),
        (
            "receive_override_options",
            "no_address_mappings,no_header_body_checks",
            "with no_header_body_checks",
        ),
        ("smtpd_milters", "", "smtpd_milters is set by this image to 'unix:/opendkim/opendkim.sock'"),
        ("non_smtpd_milters", "inet:127.0.0.1:8891", "non_smtpd_milters is set by this image"),
        ("milter_default_action", "accept", "milter_default_action is set by this image to 'tempfail'"),
        ("internal_mail_filter_classes", "bounce", "internal_mail_filter_classes is set by this image"),
        ("smtpd_milter_maps", "static:DISABLE", "smtpd_milter_maps='static:DISABLE' is refused"),
        (
            "content_filter",
            "amavis:[127.0.0.1]:10024",
            "content_filter='amavis:[127.0.0.1]:10024' is refused",
        ),
        ("smtpd_proxy_filter", "127.0.0.1:10025", "smtpd_proxy_filter='127.0.0.1:10025' is refused"),
        ("smtpd_authorized_xclient_hosts", "10.0.0.0/8", "(XCLIENT), one in mynetworks too: an open relay"),
        ("smtpd_authorized_xforward_hosts", "10.0.0.0/8", "smtpd_authorized_xforward_hosts='10.0.0.0/8'"),
        ("body_checks", "regexp:/x", "body_checks='regexp:/x' is refused"),
        ("header_checks", "regexp:/x", "master.cf pins header_checks with -o for submission (port 587)"),
        ("milter_header_checks", "", "master.cf pins milter_header_checks"),
        ("smtpd_relay_restrictions", "permit", "master.cf pins smtpd_relay_restrictions"),
        ("smtpd_recipient_restrictions", "permit", "master.cf pins smtpd_recipient_restrictions"),
        ("cleanup_service_name", "cleanup", "master.cf pins cleanup_service_name"),
        ("mynetworks_style", "subnet", "mynetworks_style='subnet' is refused"),
    ],
)
def test_a_weakening_override_is_refused_naming_the_variable(
    tmp_path: Path, name: str, value: str, verdict: str
) -> None:
    code, errs = judge(tmp_path, {f"POSTFIX_{name}": value})
    assert code == 1
    assert len(errs) == 1 and errs[0].startswith(f"[smtp-out] ERROR: POSTFIX_{name}: "), errs
    assert verdict in errs[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("smtpd_milters", "unix:/opendkim/opendkim.sock"),  # the image's own value
        ("milter_default_action", "tempfail"),
        ("internal_mail_filter_classes", "bounce,notify"),
        ("receive_override_options", "*"),
        ("receive_override_options", "no_address_mappings, no_unknown_recipient_checks"),
        ("smtpd_milter_maps", ""),
        ("content_filter", ""),
        ("mynetworks_style", "host"),
        ("smtpd_client_restrictions", "permit_mynetworks, reject"),
        ("ms-throttle_destination_rate_delay", "2s"),
        ("relay_domains", "example.com"),
    ],
)
def test_an_override_that_weakens_nothing_passes(tmp_path: Path, name: str, value: str) -> None:
    assert judge(tmp_path, {f"POSTFIX_{name}": value}) == (0, [])


def test_a_line_of_main_cf_override_is_named_by_file_and_line(tmp_path: Path) -> None:
    code, errs = judge(
        tmp_path, {}, "myhostname = feedsubscription.com\n# x\nsmtpd_milter_maps =\n  static:DISABLE\n"
    )
    override = tmp_path / "etc" / "postfix" / "main.cf.override"
    assert code == 1
    assert errs == [
        f"[smtp-out] ERROR: {override} line 3: smtpd_milter_maps='static:DISABLE' is refused: it replaces "
        "the "
        "DKIM milter per client (static:DISABLE switches it off): mail would leave unsigned; remove the "
        "override"
    ]


def test_the_environment_wins_over_the_override_and_is_named(tmp_path: Path) -> None:
    code, errs = judge(tmp_path, {"POSTFIX_content_filter": "smtp:[x]"}, "content_filter =\n")
    assert code == 1 and errs[0].startswith("[smtp-out] ERROR: POSTFIX_content_filter: ")


def test_the_shipped_configuration_passes(tmp_path: Path) -> None:
    assert judge(tmp_path, {}) == (0, [])


@pytest.mark.parametrize("value", ["true", "1", "YES"])
def test_an_opt_in_switch_must_be_yes_or_no(tmp_path: Path, value: str) -> None:
    code, errs = judge(tmp_path, {"SMTP_OUT_ALLOW_WIDE_MYNETWORKS": value})
    assert code == 1
    assert errs == [f"[smtp-out] ERROR: SMTP_OUT_ALLOW_WIDE_MYNETWORKS='{value}': give yes or no"]


# --- mynetworks ------------------------------------------------------------------------------


def test_private_and_loopback_networks_only() -> None:
    private = ["127.0.0.0/8", "127.0.0.1", "10.0.0.0/8", "10.5.5.100", "172.16.0.0/12", "172.31.255.0/24",
               "192.168.0.0/16", "192.168.7.0/24", "[::1]", "[::1]/128"]  # fmt: skip
    wide = ["0.0.0.0/0", "100.64.0.0/10", "172.32.0.0/16", "172.0.0.0/8", "10.0.0.0/7", "8.8.8.8",
            "192.169.0.0/16", "[::]/0", "[fd00::]/8", "11.0.0.0/8"]  # fmt: skip
    script = "; ".join(
        f"is_private_network '{e}' && echo 'private {e}' || echo 'wide {e}'" for e in private + wide
    )
    r = run_stage(script)
    assert r.stdout.splitlines() == [f"private {e}" for e in private] + [f"wide {e}" for e in wide]


def relay_networks(mynetworks: str, env: dict[str, str] | None = None) -> tuple[int, list[str], list[str]]:
    r = run_stage(
        f"read_policy_switches; SETTING_SOURCE[mynetworks]=POSTFIX_mynetworks; MYNETWORKS='{mynetworks}'; "
        "check_relay_networks",
        env,
    )
    return r.returncode, errors(r), warnings(r)


def test_a_wide_mynetworks_is_refused_without_the_opt_in() -> None:
    code, errs, _ = relay_networks("127.0.0.0/8, 10.0.0.0/8 100.64.0.0/10")
    assert code == 1
    assert errs == [
        "[smtp-out] ERROR: POSTFIX_mynetworks: mynetworks entry '100.64.0.0/10' is outside the private (RFC "
        "1918) "
        "and loopback networks: every client there could relay through this image; set "
        "SMTP_OUT_ALLOW_WIDE_MYNETWORKS=yes to allow it on purpose"
    ]


def test_a_wide_mynetworks_with_the_opt_in_starts_with_one_warning() -> None:
    code, errs, warns = relay_networks(
        "10.0.0.0/8 100.64.0.0/10 0.0.0.0/0", {"SMTP_OUT_ALLOW_WIDE_MYNETWORKS": "yes"}
    )
    assert (code, errs) == (0, [])
    assert warns == [
        "[smtp-out] WARNING: mynetworks (from POSTFIX_mynetworks) includes 100.64.0.0/10 0.0.0.0/0, beyond "
        "the "
        "private and loopback networks: clients there may relay, and their mail is signed "
        "(SMTP_OUT_ALLOW_WIDE_MYNETWORKS=yes)"
    ]


def test_a_private_mynetworks_passes_silently() -> None:
    assert relay_networks("127.0.0.0/8 10.0.0.0/8,172.16.0.0/12 192.168.0.0/16") == (0, [], [])


def test_an_entry_that_is_not_a_network_is_refused_first() -> None:
    code, errs, _ = relay_networks("0.0.0.0/0 hash:/etc/postfix/network_table")
    assert code == 1 and "'hash:/etc/postfix/network_table' is not an address or network" in errs[0]


# --- the TLS floor ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "floor"),
    [
        (">=TLSv1.2", "TLSv1.2"),
        (">=TLSv1.3", "TLSv1.3"),
        (">=TLSv1", "TLSv1"),
        ("!SSLv2, !SSLv3", "TLSv1"),
        ("!SSLv2:!SSLv3:!TLSv1:!TLSv1.1", "TLSv1.2"),
        ("TLSv1.2 TLSv1.3", "TLSv1.2"),
        ("TLSv1.1", "TLSv1.1"),
        ("<=TLSv1.3", "SSLv2"),
        ("", "SSLv2"),
        ("tlsv1.2", "SSLv2"),  # unknown words enable nothing: judged low, never high
    ],
)
def test_the_floor_of_a_protocol_list(value: str, floor: str) -> None:
    assert run_stage(f"tls_floor '{value}'").stdout.strip() == floor


def tls_floor(
    effective: dict[str, str], env: dict[str, str] | None = None
) -> tuple[int, list[str], list[str]]:
    image = {
        "smtpd_tls_security_level": "encrypt",
        "smtp_tls_security_level": "may",
        "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
        "smtpd_tls_protocols": ">=TLSv1.2",
        "smtp_tls_mandatory_protocols": ">=TLSv1.2",
        "smtp_tls_protocols": ">=TLSv1.2",
        "smtpd_tls_ciphers": "medium",
        "smtpd_tls_mandatory_ciphers": "medium",
        "smtp_tls_ciphers": "medium",
        "smtp_tls_mandatory_ciphers": "high",
    }
    values = {**image, **effective}
    sets = "; ".join(f"EFFECTIVE[{k}]='{v}'" for k, v in values.items())
    sources = "".join(f"SETTING_SOURCE[{k}]=POSTFIX_{k}; " for k in effective)
    r = run_stage(f"read_policy_switches; {sets}; {sources}check_tls_floor", env)
    return r.returncode, errors(r), warnings(r)


def test_the_image_floor_passes_silently() -> None:
    assert tls_floor({}) == (0, [], [])


def test_tls_1_0_is_refused_without_the_opt_in() -> None:
    code, errs, _ = tls_floor({"smtpd_tls_mandatory_protocols": ">=TLSv1"})
    assert code == 1
    assert errs == [
        "[smtp-out] ERROR: POSTFIX_smtpd_tls_mandatory_protocols: smtpd_tls_mandatory_protocols='>=TLSv1' "
        "lets "
        "TLSv1 through, below TLSv1.2; the image's floor is TLSv1.2 and cipher grade medium: set "
        "SMTP_OUT_ALLOW_WEAK_TLS=yes to lower it on purpose"
    ]


def test_each_lowered_setting_gets_one_warning_with_the_opt_in() -> None:
    code, errs, warns = tls_floor(
        {"smtp_tls_protocols": "!SSLv2, !SSLv3", "smtpd_tls_ciphers": "low"},
        {"SMTP_OUT_ALLOW_WEAK_TLS": "yes"},
    )
    assert (code, errs) == (0, [])
    assert warns == [
        "[smtp-out] WARNING: smtp_tls_protocols='!SSLv2, !SSLv3' (from POSTFIX_smtp_tls_protocols) lets "
        "TLSv1 "
        "through, below TLSv1.2 (SMTP_OUT_ALLOW_WEAK_TLS=yes)",
        "[smtp-out] WARNING: smtpd_tls_ciphers='low' (from POSTFIX_smtpd_tls_ciphers) is a cipher grade "
        "below "
        "medium (SMTP_OUT_ALLOW_WEAK_TLS=yes)",
    ]


@pytest.mark.parametrize("grade", ["export", "low", "null"])
def test_a_cipher_grade_below_medium_is_refused(grade: str) -> None:
    code, errs, _ = tls_floor({"smtp_tls_mandatory_ciphers": grade})
    assert code == 1 and f"smtp_tls_mandatory_ciphers='{grade}' is a cipher grade below medium" in errs[0]


def test_raising_the_floor_is_allowed() -> None:
    assert tls_floor({"smtpd_tls_mandatory_protocols": ">=TLSv1.3", "smtp_tls_ciphers": "high"}) == (
        0,
        [],
        [],
    )


def test_lowering_the_security_levels_is_said_in_one_warning_each() -> None:
    code, errs, warns = tls_floor({"smtpd_tls_security_level": "may", "smtp_tls_security_level": "none"})
    assert (code, errs) == (0, [])
    assert warns == [
        "[smtp-out] WARNING: smtpd_tls_security_level=may (from POSTFIX_smtpd_tls_security_level): "
        "submission on "
        "port 587 accepts mail without STARTTLS; the image default is encrypt",
        "[smtp-out] WARNING: smtp_tls_security_level=none (from POSTFIX_smtp_tls_security_level): delivery "
        "on port "
        "25 never uses TLS; the image default is may",
    ]
