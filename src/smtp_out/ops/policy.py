"""What a message submitted on port 587 would see: Postfix's effective policy for the submission
service, read from `postconf` (main.cf) AND `postconf -P` (master.cf's `-o` overrides, which win
for that service), and judged here. Pure: the smoke test gathers the two outputs in its one exec.

Four guarantees are judged: the DKIM milter is applied (no `no_milters`, no milter map that
disables it, a default action that never sends unsigned), the header checks that carry the From:
policy are on, relay is restricted (mynetworks inside RFC 1918 and loopback, a relay restriction
that ends in a refusal), and the TLS floor (STARTTLS required, TLS 1.2 or newer). The first three
are red flags; a lowered TLS floor can only be chosen on purpose, so it is a warning.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

#: The service port 587 is (master.cf: `submission inet ... smtpd`).
SUBMISSION = "submission/inet"
#: main.cf parameters the policy reads (the submission service may override each with -o).
PARAMETERS = (
    "smtpd_milters",
    "non_smtpd_milters",
    "smtpd_milter_maps",
    "milter_default_action",
    "receive_override_options",
    "cleanup_service_name",
    "header_checks",
    "mynetworks",
    "smtpd_authorized_xclient_hosts",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_tls_security_level",
    "smtpd_tls_mandatory_protocols",
    "smtpd_tls_protocols",
)
#: Who may relay: loopback and the private networks (RFC 1918), nothing wider.
PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128")
)
PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
FLOOR = "TLSv1.2"
_SPLIT = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class Effective:
    """main.cf's values with one service's `-o` overrides applied, and every service's overrides
    (to follow cleanup_service_name to the cleanup that checks the headers)."""

    main: Mapping[str, str]
    services: Mapping[str, Mapping[str, str]]
    service: str = SUBMISSION

    def get(self, parameter: str, service: str | None = None) -> str:
        own = self.services.get(service or self.service, {})
        return own[parameter] if parameter in own else self.main.get(parameter, "")


def parse_postconf(text: str) -> dict[str, str]:
    """`postconf a b c` output ("name = value" lines) -> {name: value}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(" = ")
        if not sep and line.rstrip().endswith(" ="):
            name, sep, value = line.rstrip()[:-2], "=", ""
        if sep:
            out[name.strip()] = value.strip()
    return out


def parse_overrides(text: str) -> dict[str, dict[str, str]]:
    """`postconf -P` output ("service/type/name = value") -> {"service/type": {name: value}}."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_postconf(text).items():
        service, _, name = key.rpartition("/")
        if service:
            out.setdefault(service, {})[name] = value
    return out


def _words(value: str) -> list[str]:
    return [w for w in _SPLIT.split(value) if w]


def milter_problems(e: Effective) -> list[str]:
    """Why the DKIM milter would not sign a message submitted on 587 (none: it would)."""
    found = []
    if not e.get("smtpd_milters").startswith(("unix:", "inet:")):
        found.append(f"smtpd_milters = {e.get('smtpd_milters')!r} names no milter")
    if not e.get("non_smtpd_milters").startswith(("unix:", "inet:")):
        found.append("non_smtpd_milters names no milter (bounces and notices leave unsigned)")
    if "no_milters" in _words(e.get("receive_override_options")):
        found.append(f"receive_override_options = {e.get('receive_override_options')} (no_milters)")
    if e.get("smtpd_milter_maps"):
        found.append(f"smtpd_milter_maps = {e.get('smtpd_milter_maps')} (may replace or DISABLE the milter)")
    if e.get("milter_default_action") not in ("tempfail", "reject"):
        found.append(f"milter_default_action = {e.get('milter_default_action')!r} (sends unsigned)")
    return found


def header_check_problems(e: Effective) -> list[str]:
    """Why the From: policy (submission's cleanup header checks) would not run (none: it would)."""
    found = []
    if "no_header_body_checks" in _words(e.get("receive_override_options")):
        found.append(
            f"receive_override_options = {e.get('receive_override_options')} (no_header_body_checks)"
        )
    cleanup = e.get("cleanup_service_name") or "cleanup"
    if not e.get("header_checks", f"{cleanup}/unix"):
        found.append(f"the cleanup service {cleanup} has no header_checks")
    return found


def wider_networks(mynetworks: str) -> list[str]:
    """mynetworks entries outside loopback and RFC 1918 (a table or style name counts too)."""
    wider = []
    for entry in _words(mynetworks):
        try:
            net = ipaddress.ip_network(entry.strip("[]").replace("]/", "/").lstrip("["), strict=False)
        except ValueError:
            wider.append(entry)  # a lookup table or a name: its contents are not known here
            continue
        if not any(net.version == p.version and net.subnet_of(p) for p in PRIVATE):  # type: ignore[arg-type]
            wider.append(entry)
    return wider


def _refuses_relay(restrictions: str) -> bool:
    """The list ends relaying for anyone it did not permit: a reject (or reject_unauth_destination)
    comes before any unconditional permit."""
    for word in _words(restrictions):
        if word in ("reject", "reject_unauth_destination", "defer", "defer_unauth_destination"):
            return True
        if word in ("permit", "permit_auth_destination"):
            return False
    return False


def relay_problems(e: Effective) -> list[str]:
    """Why a client outside the private networks could relay through 587 (none: it could not)."""
    found = [
        f"mynetworks includes {w} (wider than loopback and RFC 1918)"
        for w in wider_networks(e.get("mynetworks"))
    ]
    if e.get("smtpd_authorized_xclient_hosts"):
        found.append(
            f"smtpd_authorized_xclient_hosts = {e.get('smtpd_authorized_xclient_hosts')} "
            "(those clients may claim any address, one in mynetworks too)"
        )
    relay = e.get("smtpd_relay_restrictions")
    judged = relay if relay else e.get("smtpd_recipient_restrictions")
    if not _refuses_relay(judged):
        name = "smtpd_relay_restrictions" if relay else "smtpd_recipient_restrictions"
        found.append(f"{name} = {judged!r} does not refuse relaying")
    return found


def lowest_protocol(value: str) -> str:
    """The oldest protocol a Postfix protocol list allows (">=TLSv1.2", "!SSLv2, !SSLv3",
    "TLSv1.2 TLSv1.3", "" = all)."""
    allowed = list(PROTOCOLS)
    words = _words(value)
    includes = [w for w in words if not w.startswith(("!", ">=", "<="))]
    if includes:
        allowed = [p for p in allowed if p in includes]
    for w in words:
        if w.startswith("!"):
            allowed = [p for p in allowed if p != w[1:]]
        elif w.startswith(">=") and w[2:] in PROTOCOLS:
            allowed = [p for p in allowed if PROTOCOLS.index(p) >= PROTOCOLS.index(w[2:])]
        elif w.startswith("<=") and w[2:] in PROTOCOLS:
            allowed = [p for p in allowed if PROTOCOLS.index(p) <= PROTOCOLS.index(w[2:])]
    return allowed[0] if allowed else "none"


def tls_problems(e: Effective) -> list[str]:
    """How the TLS floor on 587 was lowered (none: STARTTLS required, TLS 1.2 or newer)."""
    found = []
    level = e.get("smtpd_tls_security_level")
    if level != "encrypt":
        found.append(f"smtpd_tls_security_level = {level!r} (STARTTLS not required)")
    for name in ("smtpd_tls_mandatory_protocols", "smtpd_tls_protocols"):
        lowest = lowest_protocol(e.get(name))
        if lowest == "none" or PROTOCOLS.index(lowest) < PROTOCOLS.index(FLOOR):
            found.append(f"{name} = {e.get(name)!r} allows {lowest}")
    return found
