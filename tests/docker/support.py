"""Helpers the Docker-backed tests share."""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

from smtp_out import mail
from smtp_out.engine.containers import exec_text, logs, wait_for_exit
from smtp_out.material import Material

from .conftest import Started

#: Keep submitted mail in the queue: deliver nothing.
HOLD = {"POSTFIX_defer_transports": "smtp"}
#: Words that make a log line suspicious.
BAD_LOG = ("warning", "error", "fatal", "panic")


def queued(started: Started, queue_id: str) -> bytes:
    rc, out = exec_text(started.container, f"postcat -hbq {queue_id}")
    assert rc == 0, out
    return out.encode()


def refusal_code(host: str, material: Material) -> int:
    """The SMTP code with which a submission is refused, at whatever stage (0 if accepted)."""
    try:
        mail.submit(host, mail.message("reader@example.com"), ca=material.ca)
    except smtplib.SMTPRecipientsRefused as exc:
        return int(next(iter(exc.recipients.values()))[0])
    except smtplib.SMTPResponseException as exc:
        return int(exc.smtp_code)
    return 0


def assert_stops_with(s: Started, message: str, spool: Path, expect_empty: bool = True) -> None:
    """The container exits within 10 s with exactly one ERROR line, which contains `message`;
    the queue directory stays empty (unless `expect_empty` is False)."""
    started = time.monotonic()
    code = wait_for_exit(s.container, timeout=20)
    assert time.monotonic() - started < 10
    assert code == 1, code
    out = logs(s.container)
    errors = [ln for ln in out.splitlines() if ln.startswith("[smtp-out] ERROR:")]
    assert len(errors) == 1, out
    assert message in errors[0], errors[0]
    if expect_empty:
        assert list(spool.iterdir()) == [], "the queue directory was written before the input was validated"
