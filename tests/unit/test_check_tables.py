"""The smoke-test and config-test check tables, judged on hand-made facts (no Docker): a healthy
container passes every check, and each fault fails exactly the checks that should see it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from smtp_out.checks import Verdict, run_checks
from smtp_out.engine.containers import Section
from smtp_out.mail import Greeting
from smtp_out.ops import configtest, smoke

POSTCONF = """smtpd_use_tls = yes
smtp_address_preference = ipv4
myhostname = feedsubscription.com
virtual_alias_domains = feedsubscription.com
transport_maps = texthash:/etc/postfix/transport
queue_directory = /var/spool/postfix
smtpd_milters = unix:/opendkim/opendkim.sock
non_smtpd_milters = unix:/opendkim/opendkim.sock
smtpd_milter_maps =
milter_default_action = tempfail
receive_override_options =
cleanup_service_name = cleanup
header_checks =
mynetworks = 127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16
smtpd_authorized_xclient_hosts =
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination
smtpd_recipient_restrictions =
smtpd_tls_security_level = encrypt
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_protocols = >=TLSv1.2"""

#: `postconf -P` of the image: master.cf's -o overrides (submission's and its cleanup's).
OVERRIDES = """relay/unix/syslog_name = postfix/$service_name
submission/inet/cleanup_service_name = submission-cleanup
submission/inet/local_header_rewrite_clients =
submission/inet/smtpd_peername_lookup = no
submission/inet/smtpd_recipient_restrictions = permit_mynetworks,reject
submission/inet/smtpd_relay_restrictions = permit_mynetworks,reject_unauth_destination
submission/inet/smtpd_sasl_auth_enable = no
submission/inet/smtpd_sender_restrictions = check_sender_access,regexp:/etc/postfix/submission_canary_senders
submission/inet/syslog_name = postfix/submission
submission-cleanup/unix/header_checks = regexp:/etc/postfix/submission_header_checks
submission-cleanup/unix/milter_header_checks = regexp:/etc/postfix/submission_milter_header_checks
submission-cleanup/unix/mime_header_checks =
submission-cleanup/unix/nested_header_checks ="""

MILTER = (
    "unix  2      [ ACC ]     STREAM     LISTENING     41870    /var/spool/postfix/opendkim/opendkim.sock"
)


def healthy_smoke() -> smoke.SmokeFacts:
    return smoke.SmokeFacts(
        container="smtp-out",
        state="running",
        health="healthy",
        sections={
            "master": Section(0, "1"),
            "opendkim": Section(0, "57"),
            "milter": Section(0, MILTER),
            "postconf": Section(0, POSTCONF),
            "overrides": Section(0, OVERRIDES),
            "queue": Section(0, "/var/spool/postfix"),
            "selector": Section(0, "Selector                mail"),
        },
        log="[smtp-out] Starting postfix in foreground (myhostname feedsubscription.com)\n",
        smtp=Greeting(
            "220 feedsubscription.com ESMTP Postfix (Debian/GNU)",
            ("PIPELINING", "SIZE 10485760", "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME"),
        ),
    )


def failed(facts: smoke.SmokeFacts) -> set[str]:
    return {r.name for r in run_checks("t", smoke.CHECKS, facts).failed}


def with_section(facts: smoke.SmokeFacts, name: str, section: Section) -> smoke.SmokeFacts:
    return dataclasses.replace(facts, sections={**facts.sections, name: section})


def test_a_healthy_container_passes_every_smoke_check() -> None:
    report = run_checks("t", smoke.CHECKS, healthy_smoke())
    assert report.ok and len(report.results) == 22
    assert {r.verdict for r in report.results} == {Verdict.PASS}


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (lambda f: with_section(f, "opendkim", Section(1, "")), {"OpenDKIM process"}),
        (lambda f: with_section(f, "master", Section(1, "")), {"Postfix master process"}),
        (
            lambda f: with_section(
                f, "milter", Section(0, "nothing listens at /var/spool/postfix/opendkim/opendkim.sock")
            ),
            {"OpenDKIM milter socket"},
        ),
        (
            lambda f: with_section(
                f, "postconf", Section(0, POSTCONF.replace("unix:/opendkim/opendkim.sock", ""))
            ),
            {"DKIM milter configured", "Milter applied on 587"},
        ),
        (lambda f: dataclasses.replace(f, health="unhealthy"), {"Healthcheck healthy"}),
        (
            lambda f: dataclasses.replace(f, smtp=Greeting(error="ConnectionRefusedError: refused")),
            {"Port accessible (220 banner)", "STARTTLS offered in EHLO"},
        ),
        (
            lambda f: dataclasses.replace(f, smtp=Greeting("220 x ESMTP", ("PIPELINING",))),
            {"STARTTLS offered in EHLO"},
        ),
        (
            lambda f: with_section(f, "postconf", Section(0, POSTCONF.replace("= tempfail", "= accept"))),
            {"Milter default action not accept", "Milter applied on 587"},
        ),
        (
            lambda f: with_section(f, "postconf", Section(0, POSTCONF.replace("= ipv4", "= any"))),
            {"IPv4 preference"},
        ),
        (lambda f: with_section(f, "queue", Section(1, "")), {"Queue directory writable"}),
        (
            lambda f: with_section(f, "selector", Section(0, "Selector default")),
            {"DKIM selector (mail)"},
        ),
        (
            lambda f: dataclasses.replace(f, log="postfix/smtpd[9]: fatal: no SASL\n"),
            {"No errors in logs since boot"},
        ),
        (
            lambda f: dataclasses.replace(
                f, log="postfix/submission/smtpd[9]: warning: SASL authentication failure: x\n"
            ),
            set(),  # a warning is a WARN, not a failure
        ),
    ],
)
def test_each_fault_fails_exactly_the_checks_that_see_it(fault: object, expected: set[str]) -> None:
    assert callable(fault)
    assert failed(fault(healthy_smoke())) == expected


def test_a_stopped_container_fails_every_in_container_check_with_what_was_seen() -> None:
    facts = smoke.SmokeFacts("smtp-out", "exited", "unhealthy", smtp=Greeting(error="refused"))
    report = run_checks("t", smoke.CHECKS, facts)
    by_name = {r.name: r for r in report.results}
    assert by_name["Container running"].observed == "exited"
    assert by_name["OpenDKIM process"].observed == "not measured (container exited)"
    assert by_name["TLS configured"].observed == "not measured (container exited)"
    passed = {r.name for r in report.results if r.verdict is Verdict.PASS}
    assert {r.name for r in report.results if r.verdict is Verdict.WARN} == {"TLS floor on 587"}
    assert passed == {
        "No errors in logs since boot",
        "No warnings in logs since boot",
    }  # its log is still readable


def healthy_config() -> configtest.ConfigFacts:
    clean = Section(0, "")
    return configtest.ConfigFacts(
        boot_error="",
        seconds_to_ready=0.6,
        log="[smtp-out] Starting postfix in foreground\npostfix/master[1]: daemon started\n",
        sections={"postfix_check": clean, "postconf": clean, "opendkim": clean},
    )


def test_a_clean_container_passes_every_config_check() -> None:
    assert run_checks("t", configtest.CHECKS, healthy_config()).ok


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            lambda f: dataclasses.replace(
                f, boot_error="container x exited with code 1: ERROR: bad", sections={}
            ),
            {
                "container starts and greets on 587",
                "postfix check is clean",
                "postconf without warnings",
                "opendkim -n is clean",
            },
        ),
        (
            lambda f: dataclasses.replace(
                f, log=f.log + "postfix/postfix-script[12]: warning: group writable\n"
            ),
            {"no warning/error/fatal/panic in logs since boot"},
        ),
        (
            lambda f: dataclasses.replace(
                f, sections={**f.sections, "postconf": Section(0, "postconf: warning: unused parameter: x=1")}
            ),
            {"postconf without warnings"},
        ),
        (
            lambda f: dataclasses.replace(f, sections={**f.sections, "opendkim": Section(1, "bad key")}),
            {"opendkim -n is clean"},
        ),
    ],
)
def test_each_config_fault_fails_exactly_its_checks(
    fault: Callable[[configtest.ConfigFacts], configtest.ConfigFacts], expected: set[str]
) -> None:
    report = run_checks("t", configtest.CHECKS, fault(healthy_config()))
    assert {r.name for r in report.failed} == expected
