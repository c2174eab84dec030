"""SMTP as the app speaks it (port 587, STARTTLS, no AUTH), on smtplib: submit a message, or
just read the greeting and the EHLO keywords."""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

APP_SENDER = "newsletter@feedsubscription.com"
SUBMISSION_PORT = 587
_QUEUED = re.compile(r"queued as ([0-9A-Za-z]+)")


@dataclass(frozen=True)
class Submission:
    """What the server answered to DATA, and the queue id it named."""

    code: int
    reply: str
    queue_id: str | None


@dataclass(frozen=True)
class Greeting:
    """The 220 banner and the EHLO keywords, or why there were none."""

    banner: str = ""
    ehlo: tuple[str, ...] = ()
    error: str = ""


class Client(smtplib.SMTP):
    """smtplib.SMTP that verifies STARTTLS against `tls_hostname`, not the address dialled."""

    def __init__(self, host: str, port: int, timeout: float, tls_hostname: str | None) -> None:
        super().__init__(host, port, local_hostname="app.test", timeout=timeout)
        if tls_hostname:
            self._host = tls_hostname


def greet(host: str, port: int = SUBMISSION_PORT, timeout: float = 3.0) -> Greeting:
    """Connect, read the greeting, say EHLO, then QUIT: a well-behaved session, so Postfix logs
    no pipelining complaint. Never raises: a failure is in `error`."""
    smtp = smtplib.SMTP(timeout=timeout, local_hostname="smoke-test.invalid")
    try:
        code, text = smtp.connect(host, port)
        banner = f"{code} {text.decode('utf-8', 'replace')}"
        if code != 220:
            return Greeting(banner)
        code, text = smtp.ehlo()
        lines = text.decode("utf-8", "replace").splitlines()
        return Greeting(banner, tuple(lines[1:]) if code == 250 else ())
    except (OSError, smtplib.SMTPException) as exc:
        return Greeting(error=f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.quit()
        smtp.close()


def message(
    to: str, subject: str = "smtp-out test", sender: str = APP_SENDER, body: str = "Hello from the tests.\n"
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@feedsubscription.com>"
    msg.set_content(body)
    return msg


def tls_context(ca: Path | None) -> ssl.SSLContext:
    """Verify against `ca` when given; otherwise encrypt without verifying (a self-signed cert)."""
    if ca is not None:
        ctx = ssl.create_default_context(cafile=str(ca))
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def submit(
    host: str,
    msg: EmailMessage,
    *,
    port: int = SUBMISSION_PORT,
    starttls: bool = True,
    ca: Path | None = None,
    tls_hostname: str | None = "feedsubscription.com",
    timeout: float = 15.0,
) -> Submission:
    """Submit one message; raises smtplib.SMTPException subclasses on refusal."""
    sender = str(msg["From"])
    rcpts = [a.strip() for a in str(msg["To"]).split(",")]
    with Client(host, port, timeout, tls_hostname if ca else None) as smtp:
        smtp.ehlo()
        if starttls:
            smtp.starttls(context=tls_context(ca))
            smtp.ehlo()
        code, reply = smtp.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        for rcpt in rcpts:
            code, reply = smtp.rcpt(rcpt)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
        code, reply = smtp.data(msg.as_bytes())
        text = reply.decode("utf-8", "replace")
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        m = _QUEUED.search(text)
        return Submission(code, text, m.group(1) if m else None)
