"""The smoke test's judgement of what a message on 587 would see (ops.policy, over `postconf`
and `postconf -P`) and of the log (the severity after the program's tag), on the image's real
settings and on real log lines (tests/unit/data/*.log)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from smtp_out.checks import Verdict, run_checks
from smtp_out.engine.containers import Section
from smtp_out.ops import policy, smoke
from smtp_out.ops.report import logparse

from .test_check_tables import OVERRIDES, POSTCONF, healthy_smoke

DATA = Path(__file__).parent / "data"


def line_of(name: str, needle: str) -> str:
    """The first line of a captured log holding `needle`."""
    return next(ln for ln in (DATA / name).read_text().splitlines() if needle in ln)


def verdicts(main: dict[str, str] | None = None, overrides: str = "", log: str = "") -> dict[str, Verdict]:
    """Each smoke check's verdict on the healthy facts with main.cf values replaced, master.cf
    -o lines added and log lines appended."""
    postconf = policy.parse_postconf(POSTCONF) | (main or {})
    facts = healthy_smoke()
    facts = dataclasses.replace(
        facts,
        sections={
            **facts.sections,
            "postconf": Section(0, "\n".join(f"{k} = {v}" for k, v in postconf.items())),
            "overrides": Section(0, OVERRIDES + "\n" + overrides),
        },
        log=facts.log + log,
    )
    return {r.name: r.verdict for r in run_checks("t", smoke.CHECKS, facts).results}


def not_passed(v: dict[str, Verdict]) -> dict[str, Verdict]:
    return {name: verdict for name, verdict in v.items() if verdict is not Verdict.PASS}


MILTER, HEADERS, RELAY, TLS = (
    "Milter applied on 587",
    "Header checks on 587 (From: policy)",
    "Relay restricted on 587",
    "TLS floor on 587",
)


@pytest.mark.parametrize(
    ("main", "overrides", "expected"),
    [
        ({"receive_override_options": "no_milters"}, "", {MILTER: Verdict.FAIL}),
        ({"smtpd_milter_maps": "static:DISABLE"}, "", {MILTER: Verdict.FAIL}),
        ({"non_smtpd_milters": ""}, "", {MILTER: Verdict.FAIL}),
        ({}, "submission/inet/smtpd_milters =", {MILTER: Verdict.FAIL}),
        ({}, "submission/inet/receive_override_options = no_milters", {MILTER: Verdict.FAIL}),
        ({"receive_override_options": "no_header_body_checks"}, "", {HEADERS: Verdict.FAIL}),
        ({}, "submission-cleanup/unix/header_checks =", {HEADERS: Verdict.FAIL}),
        ({}, "submission/inet/cleanup_service_name = cleanup", {HEADERS: Verdict.FAIL}),
        ({"mynetworks": "0.0.0.0/0"}, "", {RELAY: Verdict.FAIL}),
        ({"mynetworks": "127.0.0.0/8, 100.64.0.0/10"}, "", {RELAY: Verdict.FAIL}),
        ({"mynetworks": "127.0.0.0/8 [::]/0"}, "", {RELAY: Verdict.FAIL}),
        ({}, "submission/inet/smtpd_relay_restrictions = permit", {RELAY: Verdict.FAIL}),
        ({}, "submission/inet/smtpd_authorized_xclient_hosts = 0.0.0.0/0", {RELAY: Verdict.FAIL}),
        ({"smtpd_tls_security_level": "may"}, "", {TLS: Verdict.WARN}),
        ({"smtpd_tls_mandatory_protocols": ">=TLSv1"}, "", {TLS: Verdict.WARN}),
        ({"smtpd_tls_protocols": "!SSLv2, !SSLv3"}, "", {TLS: Verdict.WARN}),
        # what the image ships, and narrower or equivalent settings, pass
        ({"mynetworks": "127.0.0.0/8 [::1]/128 10.5.5.0/24 192.168.1.7"}, "", {}),
        ({"smtpd_tls_mandatory_protocols": "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"}, "", {}),
        ({"smtpd_tls_protocols": "TLSv1.3"}, "", {}),
    ],
)
def test_each_weakened_guarantee_is_seen_with_its_verdict(
    main: dict[str, str], overrides: str, expected: dict[str, Verdict]
) -> None:
    assert not_passed(verdicts(main, overrides)) == expected


def test_the_policy_names_what_weakened_it() -> None:
    e = policy.Effective(
        policy.parse_postconf(POSTCONF) | {"receive_override_options": "no_milters,no_header_body_checks"},
        policy.parse_overrides(OVERRIDES),
    )
    assert policy.milter_problems(e) == [
        "receive_override_options = no_milters,no_header_body_checks (no_milters)"
    ]
    assert policy.header_check_problems(e) == [
        "receive_override_options = no_milters,no_header_body_checks (no_header_body_checks)"
    ]
    assert policy.lowest_protocol(">=TLSv1.2") == "TLSv1.2"
    assert policy.lowest_protocol("") == "SSLv2"
    assert policy.lowest_protocol("<=TLSv1.1") == "SSLv2"


# --- the log, by severity ------------------------------------------------------------------

ERRORS, WARNINGS = "No errors in logs since boot", "No warnings in logs since boot"
WARNED = {WARNINGS: Verdict.WARN}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # deferrals are deliveries, not errors: by smtp, and by Postfix's `error` agent
        (line_of("troubled.log", "status=deferred (Host or domain name not found"), {}),
        (
            "Nov 25 14:54:05 feedsubscription postfix/error[702]: B6D0A20E354: to=<leo@nxdomain.test>, "
            "relay=none, delay=5.1, delays=5.1/0/0/0, dsn=4.4.3, status=deferred (delivery temporarily "
            "suspended: Host or domain name not found. Name service error for name=nxdomain.test type=MX: "
            "Host not found, try again)",
            {},
        ),
        (line_of("permissions.log", "status=deferred (Cannot start TLS"), {}),
        # a milter failure, a TLS failure (quoting OpenSSL's "error:"), a permission warning: WARN
        (
            line_of("troubled.log", "warning: milter inet:127.0.0.1:8891: can't read"),
            {WARNINGS: Verdict.WARN},
        ),
        (
            line_of("permissions.log", "warning: TLS library problem: error:0A00010B"),
            {WARNINGS: Verdict.WARN},
        ),
        (line_of("permissions.log", "warning: not owned by root"), WARNED),
        # error:, fatal:, panic: and the entrypoint's ERROR fail
        (line_of("documented.log", "fatal: bind 0.0.0.0 port 587"), {ERRORS: Verdict.FAIL}),
        (line_of("documented.log", "panic: mymalloc"), {ERRORS: Verdict.FAIL}),
        (line_of("startup-error.log", "[smtp-out] ERROR:"), {ERRORS: Verdict.FAIL}),
        (line_of("permissions.log", "error loading key"), {ERRORS: Verdict.FAIL}),
        # a line that merely contains the words is not a problem
        (
            "Nov 25 14:54:00 feedsubscription postfix/cleanup[303]: 9FB9220E103: "
            "message-id=<error.fatal.panic@feedsubscription.com>",
            {},
        ),
        (
            "Nov 25 14:54:00 feedsubscription postfix/submission-cleanup/cleanup[303]: 9FB9220E103: info: "
            "header List-Unsubscribe: <mailto:error@feedsubscription.com> from unknown[10.5.5.100]",
            {},
        ),
    ],
)
def test_log_lines_are_judged_by_the_severity_after_the_programs_tag(
    line: str, expected: dict[str, Verdict]
) -> None:
    assert not_passed(verdicts(log=line + "\n")) == expected


@pytest.mark.parametrize("name", ["healthy.log", "troubled.log", "tls-config.log"])
def test_no_captured_postfix_line_without_a_failing_severity_fails_the_smoke_test(name: str) -> None:
    """The troubled and TLS captures hold deferrals, bounces, refusals, milter and TLS warnings,
    and no error:/fatal:/panic: line: no failure, only WARN."""
    v = verdicts(log=(DATA / name).read_text())
    assert v[ERRORS] is Verdict.PASS
    assert v[WARNINGS] is (Verdict.PASS if name == "healthy.log" else Verdict.WARN)
    assert [p.severity for p in logparse.problems((DATA / name).read_text()) if p.failing] == []
