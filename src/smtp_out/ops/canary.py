"""The DKIM canary: one message through a relay, checked against the key the world sees.

It submits a message as the app does (STARTTLS, from an address the relay may relay for) with
the envelope sender smtp-out-canary@<myhostname>, which the image holds on arrival (an access
map HOLD, so it cannot leave before it is checked; `postsuper -h` makes sure). It reads the
queued message back, verifies its signature with dkimpy against the TXT record published in DNS
for <selector>._domainkey.<domain>, checks that this published key is the public half of the
private key mounted in the container, and then releases the message to its recipient, or
deletes it. A relay whose OpenDKIM is down answers 4xx: the canary fails there, naming it.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.resolver
import docker
import docker.errors
from docker.models.containers import Container

from ..checks import Check, Report, run_checks
from ..dkim import DKIM_SELECTOR, dkim_tags, verify
from ..engine import containers
from ..engine.containers import exec_text
from ..engine.polling import NotReady, poll
from ..mail import message, submit
from .queue import listing

SENDER_LOCAL_PART = "smtp-out-canary"


@dataclass(frozen=True)
class CanaryFacts:
    container: str
    domain: str
    selector: str
    submitted: str  # the final reply ("250 2.0.0 Ok: queued as ...") or the refusal
    queue_id: str | None
    held: str  # the queue the message sat in when read ("hold"), or what went wrong
    raw: bytes  # the queued message as it would leave
    published: str  # the TXT value published in DNS, or "" (see published_error)
    published_error: str
    mounted_public: str  # base64 DER of the mounted private key's public half, or an error
    disposal: str  # "released to ...", "deleted", or why neither

    @property
    def published_key(self) -> str:
        m = re.search(r"(?:^|;)\s*p=([A-Za-z0-9+/=\s]*)", self.published)
        return re.sub(r"\s+", "", m.group(1)) if m else ""

    @property
    def signature_verifies(self) -> bool:
        return bool(
            self.raw and self.published and verify(self.raw, self.published, self.domain, self.selector)
        )


def _not_measured(f: CanaryFacts) -> str:
    return f"not measured: {f.submitted}"


def _key_match(f: CanaryFacts) -> str:
    if f.published_key and f.published_key == f.mounted_public:
        return "match"
    return f"published {f.published_key[:24] or '(none)'}..., mounted {f.mounted_public[:24]}..."


def checks(recipient: str | None) -> tuple[Check[CanaryFacts], ...]:
    """The canary's verdicts, in the order they happen."""
    disposal = f"released to {recipient}" if recipient else "deleted"
    return (
        Check(
            "Accepted over STARTTLS", lambda f: f.submitted, lambda v: str(v).startswith("250"), "a 250 reply"
        ),
        Check(
            "Held on arrival",
            lambda f: f.held if f.queue_id else _not_measured(f),
            lambda v: v == "hold",
            "hold",
        ),
        Check(
            "Signed with the domain and selector",
            lambda f: (
                " ".join(f"{k}={v}" for k, v in dkim_tags(f.raw).items() if k in "ds") or "no DKIM-Signature"
            ),
            lambda v: bool(re.fullmatch(r"(d=\S+ s=\S+|s=\S+ d=\S+)", str(v))),
            "DKIM-Signature with d=<myhostname> s=<selector>",
        ),
        Check(
            "Key published in DNS",
            lambda f: f"{f.selector}._domainkey.{f.domain}: " + (f.published or f.published_error),
            lambda v: "v=DKIM1" in str(v) and "p=" in str(v),
            "a v=DKIM1 TXT record with p=",
        ),
        Check(
            "Published key matches the mounted private key",
            _key_match,
            lambda v: v == "match",
            "the same public key",
        ),
        Check(
            "Signature verifies against the published key (dkimpy)",
            lambda f: "valid" if f.signature_verifies else ("invalid" if f.raw else _not_measured(f)),
            lambda v: v == "valid",
            "valid",
        ),
        Check(f"Canary {disposal}", lambda f: f.disposal, lambda v: v == disposal, disposal),
    )


def _postconf(container: Container, name: str) -> str:
    return exec_text(container, f"postconf -h {name}")[1].strip()


def published_txt(name: str, resolver: str | None) -> tuple[str, str]:
    """The DKIM TXT value published at `name` (strings joined), or ("", why not)."""
    res = dns.resolver.Resolver(configure=resolver is None)
    if resolver is not None:
        res.nameservers = [resolver]
    res.lifetime = 5.0
    try:
        answer = res.resolve(name, "TXT")
    except dns.exception.DNSException as exc:
        return "", f"DNS lookup failed ({type(exc).__name__}: {exc})"
    values = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
    keys = [v for v in values if v.replace(" ", "").startswith("v=DKIM1")]
    return (keys[0], "") if keys else ("", f"no v=DKIM1 record among {values}")


def _mounted_public(container: Container, domain: str) -> str:
    key = f"/etc/opendkim/keys/{domain}.private"
    rc, out = exec_text(container, f"openssl pkey -in {key} -pubout -outform DER | base64 -w0")
    return out.strip() if rc == 0 else f"cannot read {key}: {out.strip()[:120]}"


def _submit(host: str, port: int, domain: str, recipient: str, ca: Path | None) -> tuple[str, str | None]:
    msg = message(
        recipient,
        subject=f"smtp-out DKIM canary {uuid.uuid4().hex[:8]}",
        sender=f"{SENDER_LOCAL_PART}@{domain}",
    )
    msg.replace_header("Message-ID", f"<canary.{uuid.uuid4().hex}@{domain}>")
    try:
        sub = submit(host, msg, port=port, ca=ca, tls_hostname=domain)
    except smtplib.SMTPResponseException as exc:
        return f"{exc.smtp_code} {_text(exc.smtp_error)}", None
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return f"{code} {_text(text)}", None
    except (OSError, smtplib.SMTPException) as exc:
        return f"{type(exc).__name__}: {exc}", None
    return f"{sub.code} {sub.reply}", sub.queue_id


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _queue_of(container: Container, queue_id: str) -> str:
    """The queue (hold, active, ...) the message is in, or "gone from the queue"."""
    queues = {m["queue_id"]: m.get("queue_name", "?") for m in listing.messages(container)}
    return str(queues.get(queue_id, "gone from the queue"))


def _held_copy(container: Container, queue_id: str, timeout: float = 10.0) -> tuple[str, bytes]:
    """Hold the message (if the image did not already), then read it back from the queue."""
    exec_text(container, f"postsuper -h {queue_id} 2>/dev/null")
    queue = "unknown"

    def settled() -> str | None:
        nonlocal queue
        queue = _queue_of(container, queue_id)
        return queue if queue in ("hold", "gone from the queue") else None

    with contextlib.suppress(NotReady):
        poll(settled, timeout=timeout, interval=0.1, seen=lambda: queue)
    if queue != "hold":
        return queue, b""
    rc, raw = exec_text(container, f"postcat -hbq {queue_id}")
    return queue, raw.encode() if rc == 0 else b""


def _dispose(
    container: Container, queue_id: str | None, release: bool, ok: bool, recipient: str | None
) -> str:
    if queue_id is None:
        return "nothing to dispose of: not queued"
    if release and ok:
        rc, out = exec_text(container, f"postsuper -H {queue_id}")
        return f"released to {recipient}" if rc == 0 else f"release failed: {out.strip()}"
    rc, out = exec_text(container, f"postsuper -d {queue_id}")
    return "deleted" if rc == 0 else f"delete failed: {out.strip()}"


def run(
    client: docker.DockerClient,
    container: str,
    *,
    host: str = "127.0.0.1",
    port: int = 1587,
    to: str | None = None,
    resolver: str | None = None,
    ca: Path | None = None,
    selector: str = DKIM_SELECTOR,
) -> Report:
    """Run the canary through `container` (published on host:port). With `to`, a message that
    passed every check is released to that address; otherwise, and on any failure, it is deleted."""
    started = time.monotonic()
    relay = containers.get(client, container)
    domain = _postconf(relay, "myhostname")
    recipient = to or f"postmaster@{domain}"
    submitted, queue_id = _submit(host, port, domain, recipient, ca)
    held, raw = _held_copy(relay, queue_id) if queue_id else ("not queued", b"")
    published, why = published_txt(f"{selector}._domainkey.{domain}", resolver)
    partial = CanaryFacts(container, domain, selector, submitted, queue_id, held, raw, published, why,
                          _mounted_public(relay, domain), "")  # fmt: skip
    table = checks(to)
    ok = run_checks("", table[:-1], partial).ok
    facts = CanaryFacts(**{**partial.__dict__, "disposal": _dispose(relay, queue_id, to is not None, ok, to)})
    return run_checks(f"SMTP-OUT DKIM CANARY: {container} ({domain})", table, facts, started)
