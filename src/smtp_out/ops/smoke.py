"""The smoke test: the spec's 14 checks (three corrected) plus STARTTLS, health, the milter's
default action, what a message on 587 would see (ops.policy) and log warnings.

Facts are gathered once, concurrently, in as few round trips as the Docker API allows: one
inspect, one exec that runs every in-container command, one logs call, and one SMTP session
from the host to the published port. Each check then reads its value from those facts.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import docker
import docker.errors
from docker.models.containers import Container

from ..checks import Check, Report, Verdict, finds_nothing, run_checks
from ..engine import containers
from ..engine.containers import Section, logs, run_sections
from ..mail import Greeting, greet
from . import policy
from .report import logparse

POSTCONF_PARAMS = (
    "smtpd_use_tls",
    "smtp_address_preference",
    "myhostname",
    "virtual_alias_domains",
    "transport_maps",
    "queue_directory",
    *policy.PARAMETERS,
)

#: Whatever smtpd_milters names, listening: a unix socket (inside the chrooted queue directory)
#: or a TCP port. Prints netstat's line for it (with LISTEN in it), or what is wrong.
MILTER_LISTENING = (
    'm=$(postconf -h smtpd_milters); case "$m" in '
    'unix:*) p="$(postconf -h queue_directory)${m#unix:}"; '
    'netstat -lx | grep -F " $p" || echo "nothing listens at $p";; '
    'inet:*) netstat -ltn | grep ":${m##*:} " || echo "nothing listens on ${m#inet:}";; '
    '*) echo "smtpd_milters names no milter: $m";; esac'
)

COMMANDS = {
    "master": "pgrep -x master",
    "opendkim": "pgrep -x opendkim",
    "milter": MILTER_LISTENING,
    "postconf": "postconf " + " ".join(POSTCONF_PARAMS),
    # master.cf's -o overrides of every service: they win over main.cf for that service
    "overrides": "postconf -P",
    # Postfix's queue_directory (on Debian /var/spool/postfix; the spec's .../queue does not exist)
    "queue": 'qd=$(postconf -h queue_directory 2>/dev/null) && test -d "$qd/deferred" && test -w "$qd" '
    '&& echo "$qd"',
    "selector": "grep -E '^Selector[[:space:]]+' /etc/opendkim/opendkim.conf",
}


@dataclass(frozen=True)
class SmokeFacts:
    container: str
    state: str  # running, exited, ...
    health: str  # healthy, unhealthy, starting, none
    sections: dict[str, Section] = field(default_factory=dict)
    log: str = ""
    smtp: Greeting = field(default_factory=Greeting)

    def ok(self, name: str) -> bool:
        s = self.sections.get(name)
        return s is not None and s.rc == 0

    def out(self, name: str) -> str:
        s = self.sections.get(name)
        if s is None:
            return f"not measured (container {self.state})"
        return s.output.strip() or f"exit {s.rc}"

    @property
    def submission(self) -> policy.Effective:
        """The effective policy of the submission service (587): main.cf with its -o overrides."""
        main = policy.parse_postconf(self.sections.get("postconf", Section(1, "")).output)
        overrides = policy.parse_overrides(self.sections.get("overrides", Section(1, "")).output)
        return policy.Effective(main, overrides)

    def postconf(self, name: str) -> str:
        for line in self.sections.get("postconf", Section(1, "")).output.splitlines():
            key, _, value = line.partition(" = ")
            if key.strip() == name:
                return value.strip()
        return self.out("postconf") if "postconf" not in self.sections else "(unset)"


def _logs_since_start(container: Container) -> str:
    started = str(container.attrs.get("State", {}).get("StartedAt", ""))
    since = None
    with contextlib.suppress(ValueError):
        since = datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00" if started else "")
    return logs(container, since=since) if since else logs(container)


def gather(client: docker.DockerClient, name: str, host: str, port: int) -> SmokeFacts:
    with ThreadPoolExecutor(max_workers=2) as pool:
        smtp_future = pool.submit(greet, host, port)
        container = containers.get(client, name)
        state = str(container.attrs.get("State", {}).get("Status", "unknown"))
        health = str((container.attrs.get("State", {}).get("Health") or {}).get("Status", "none"))
        if state != "running":
            return SmokeFacts(
                name, state, health, log=_logs_since_start(container), smtp=smtp_future.result()
            )
        log_future = pool.submit(_logs_since_start, container)
        sections = run_sections(container, COMMANDS)
        return SmokeFacts(name, state, health, sections, log_future.result(), smtp_future.result())


def _log_problems(log: str, failing: bool) -> list[str]:
    return [p.line for p in logparse.problems(log) if p.failing is failing]


def _policy(name: str, find: Callable[[policy.Effective], list[str]], expect: str, fix: str,
            severity: Verdict = Verdict.FAIL) -> Check[SmokeFacts]:  # fmt: skip
    """A check of the submission service's effective policy: passes when `find` finds nothing."""
    return Check(
        name,
        lambda f: (find(f.submission) or "as required") if "postconf" in f.sections else f.out("postconf"),
        lambda v: v == "as required",
        expect,
        fix=fix,
        severity=severity,
    )


def _postconf_is(name: str, parameter: str, want: str) -> Check[SmokeFacts]:
    """A check that Postfix's effective `parameter` is exactly `want`."""
    return Check(name, lambda f: f.postconf(parameter), lambda v: v == want, f"{parameter} = {want}")


CHECKS: tuple[Check[SmokeFacts], ...] = (
    Check("Container running", lambda f: f.state, lambda v: v == "running", "running"),
    Check(
        "Postfix master process",
        lambda f: "running" if f.ok("master") else f.out("master"),
        lambda v: v == "running",
        "a process named master",
    ),
    Check(
        "OpenDKIM process",
        lambda f: "running" if f.ok("opendkim") else f.out("opendkim"),
        lambda v: v == "running",
        "a process named opendkim",
    ),
    Check(
        "OpenDKIM milter socket",
        lambda f: f.out("milter"),
        lambda v: "LISTEN" in str(v),
        "the socket smtpd_milters names, listening",
    ),
    Check(
        "Port accessible (220 banner)",
        lambda f: f.smtp.banner or f.smtp.error,
        lambda v: str(v).startswith("220"),
        "a 220 greeting",
    ),
    Check(
        "STARTTLS offered in EHLO",
        lambda f: " ".join(f.smtp.ehlo) or f.smtp.error or "no EHLO reply",
        lambda v: "STARTTLS" in str(v).split(),
        "STARTTLS among the EHLO keywords",
    ),
    _postconf_is("TLS configured", "smtpd_use_tls", "yes"),
    _postconf_is("IPv4 preference", "smtp_address_preference", "ipv4"),
    _postconf_is("Hostname (feedsubscription.com)", "myhostname", "feedsubscription.com"),
    _postconf_is("Virtual alias domains", "virtual_alias_domains", "feedsubscription.com"),
    Check(
        "Transport maps",
        lambda f: f.postconf("transport_maps"),
        lambda v: "texthash:/etc/postfix/transport" in str(v),
        "texthash:/etc/postfix/transport",
    ),
    Check(
        "DKIM milter configured",
        lambda f: f.postconf("smtpd_milters"),
        lambda v: str(v).startswith(("unix:", "inet:")),
        "smtpd_milters names a unix: or inet: milter",
    ),
    Check(
        "Milter default action not accept",
        lambda f: f.postconf("milter_default_action"),
        lambda v: v in ("tempfail", "reject"),
        "tempfail (or reject): never send unsigned",
    ),
    Check(
        "Queue directory writable",
        lambda f: f.out("queue") if f.ok("queue") else f"not writable: {f.out('queue')}",
        lambda v: str(v).startswith("/"),
        "queue_directory exists and is writable",
    ),
    _policy(
        "Milter applied on 587",
        policy.milter_problems,
        "every submission and notice passes the DKIM milter; tempfail when it is down",
        "remove the override that switches the milter off (receive_override_options, smtpd_milter_maps, ...)",
    ),
    _policy(
        "Header checks on 587 (From: policy)",
        policy.header_check_problems,
        "submission's cleanup runs its header_checks",
        "remove no_header_body_checks / the header_checks override",
    ),
    _policy(
        "Relay restricted on 587",
        policy.relay_problems,
        "mynetworks within loopback and RFC 1918; relay restrictions that refuse everyone else",
        "narrow mynetworks; end smtpd_relay_restrictions with reject_unauth_destination",
    ),
    _policy(
        "TLS floor on 587",
        policy.tls_problems,
        "STARTTLS required (encrypt), TLS 1.2 or newer",
        "lowered on purpose? otherwise drop the TLS overrides",
        Verdict.WARN,
    ),
    finds_nothing(
        "No errors in logs since boot",
        lambda f: _log_problems(f.log, failing=True),
        "no error:/fatal:/panic: line (the severity after the program's tag)",
    ),
    Check(
        "No warnings in logs since boot",
        lambda f: _log_problems(f.log, failing=False) or "none",
        lambda v: v == "none",
        "no warning: line",
        severity=Verdict.WARN,
    ),
    Check(
        "DKIM selector (mail)",
        lambda f: f.out("selector"),
        lambda v: re.match(r"Selector\s+mail\s*$", str(v)) is not None,
        "Selector mail",
    ),
    Check("Healthcheck healthy", lambda f: f.health, lambda v: v == "healthy", "healthy"),
)


def run(
    client: docker.DockerClient, container: str = "smtp-out", port: int = 1587, host: str = "127.0.0.1"
) -> Report:
    started = time.monotonic()
    facts = gather(client, container, host, port)
    return run_checks(f"SMTP-OUT SMOKE TEST: {container}", CHECKS, facts, started)
