"""The smoke test: the spec's 14 checks (two corrected) plus STARTTLS, health and milter action.

Facts are gathered once, concurrently, in as few round trips as the Docker API allows: one
inspect, one exec that runs every in-container command, one logs call, and one SMTP session
from the host to the published port. Each check then reads its value from those facts.
"""

from __future__ import annotations

import contextlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import docker
import docker.errors
from docker.models.containers import Container

from ..checks import Check, Report, finds_nothing, run_checks
from ..engine.containers import Section, logs, run_sections
from ..errors import SmtpOutError
from ..mail import Greeting, greet

POSTCONF_PARAMS = (
    "smtpd_use_tls",
    "smtp_address_preference",
    "myhostname",
    "virtual_alias_domains",
    "transport_maps",
    "smtpd_milters",
    "milter_default_action",
    "queue_directory",
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
    # Postfix's queue_directory (on Debian /var/spool/postfix; the spec's .../queue does not exist)
    "queue": 'qd=$(postconf -h queue_directory 2>/dev/null) && test -d "$qd/deferred" && test -w "$qd" '
    '&& echo "$qd"',
    "selector": "grep -E '^Selector[[:space:]]+' /etc/opendkim/opendkim.conf",
}

#: The spec's log check: error|fatal|crit (and panic), less its two known-harmless patterns.
LOG_PROBLEM = re.compile(r"error|fatal|crit|panic", re.IGNORECASE)
LOG_IGNORED = re.compile(r"warning: SASL|Permission denied")


class NoSuchContainer(SmtpOutError):
    """The container to check does not exist: one line, not a table of failures."""


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
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            raise NoSuchContainer(
                f"no container named {name!r} (docker ps -a lists the containers)"
            ) from None
        state = str(container.attrs.get("State", {}).get("Status", "unknown"))
        health = str((container.attrs.get("State", {}).get("Health") or {}).get("Status", "none"))
        if state != "running":
            return SmokeFacts(
                name, state, health, log=_logs_since_start(container), smtp=smtp_future.result()
            )
        log_future = pool.submit(_logs_since_start, container)
        sections = run_sections(container, COMMANDS)
        return SmokeFacts(name, state, health, sections, log_future.result(), smtp_future.result())


def _log_problems(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if LOG_PROBLEM.search(ln) and not LOG_IGNORED.search(ln)]


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
    finds_nothing(
        "No errors in logs since boot", lambda f: _log_problems(f.log), "no error/fatal/crit/panic line"
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
