"""A synthetic day of a busy relay's log, for the summariser's speed test and benchmark.

Every line follows a format captured from the real image (tests/unit/data/*.log). The mix is
fixed, not random, so a test can reason about it: the app submits over STARTTLS in sessions of
SESSION_MESSAGES messages; message i goes through transport TRANSPORTS[i % 10], is deferred
once before it is sent when i % 20 == 3, and bounces when i % 50 == 7; every 100th session is
preceded by a relay attempt from outside mynetworks, and every 150th by a client that drops the
TLS handshake.
"""

from __future__ import annotations

from collections.abc import Iterator

SESSION_MESSAGES = 50
TRANSPORTS = ("smtp",) * 6 + ("ms-throttle", "ms-throttle", "yahoo-throttle", "comcast-throttle")
DOMAINS = {"smtp": "example.com", "ms-throttle": "outlook.com", "yahoo-throttle": "yahoo.com",
           "comcast-throttle": "comcast.net"}  # fmt: skip
APP = "unknown[10.5.5.100]"
SENDER = "newsletter@feedsubscription.com"
MX = "mx.example.net[192.0.2.25]:25"


def _message(i: int) -> list[tuple[str, str]]:
    """(program, text) lines of message i, from submission to removal."""
    qid = f"{0x1000000000 + i * 7919:011X}"
    transport = TRANSPORTS[i % len(TRANSPORTS)]
    agent = "postfix/smtp" if transport == "smtp" else f"postfix/{transport}/smtp"
    rcpt = f"reader{i}@{DOMAINS[transport]}"
    lines = [
        ("postfix/submission/smtpd", f"{qid}: client={APP}"),
        ("postfix/cleanup", f"{qid}: message-id=<{i:032x}@feedsubscription.com>"),
        ("opendkim", f"{qid}: DKIM-Signature field added (s=mail, d=feedsubscription.com)"),
        ("postfix/qmgr", f"{qid}: from=<{SENDER}>, size={700 + i % 300}, nrcpt=1 (queue active)"),
    ]
    done = f"{qid}: to=<{rcpt}>, relay={MX}, delay=0.11, delays=0.1/0.01/0/0, dsn="
    if i % 20 == 3:
        lines.append((agent, done + "4.2.0, status=deferred (host mx.example.net[192.0.2.25] said: "
                      "421 4.2.0 Try again later (in reply to RCPT TO command))"))  # fmt: skip
        lines.append(("postfix/qmgr", lines[3][1]))
    if i % 50 == 7:
        lines.append((agent, done + "5.1.1, status=bounced (host mx.example.net[192.0.2.25] said: "
                      f"550 5.1.1 <{rcpt}>: User unknown (in reply to RCPT TO command))"))  # fmt: skip
    else:
        lines.append((agent, done + "2.0.0, status=sent (250 2.0.0 Ok: queued as 4Xq1Zk2Rb0z)"))
    lines.append(("postfix/qmgr", f"{qid}: removed"))
    return lines


def _session(n: int) -> list[tuple[str, str]]:
    """(program, text) lines of session n: its incidents, connect, its messages, disconnect."""
    smtpd = "postfix/submission/smtpd"
    lines: list[tuple[str, str]] = []
    if n % 100 == 99:
        outsider = "unknown[100.64.0.100]"
        refused = f"554 5.7.1 <x@example.com>: Relay access denied; from=<{SENDER}> to=<x@example.com>"
        lines += [
            (smtpd, f"connect from {outsider}"),
            (smtpd, f"NOQUEUE: reject: RCPT from {outsider}: {refused} proto=ESMTP helo=<app.test>"),
            (smtpd, f"disconnect from {outsider} ehlo=2 starttls=1 mail=1 rcpt=0/1 quit=1 commands=5/6"),
        ]
    if n % 150 == 149:
        lines += [
            (smtpd, f"connect from {APP}"),
            (smtpd, f"SSL_accept error from {APP}: lost connection"),
            (smtpd, f"lost connection after STARTTLS from {APP}"),
        ]
    lines.append((smtpd, f"connect from {APP}"))
    first = n * SESSION_MESSAGES
    for i in range(first, first + SESSION_MESSAGES):
        lines += _message(i)
    count = SESSION_MESSAGES
    lines.append((smtpd, f"disconnect from {APP} ehlo=2 starttls=1 mail={count} rcpt={count} "
                  f"data={count} quit=1 commands={3 * count + 4}"))  # fmt: skip
    return lines


def synthetic_log(n_lines: int, timestamps: bool = True) -> Iterator[str]:
    """Exactly `n_lines` log lines as `docker logs` gives them (with Docker's RFC 3339 prefix
    when `timestamps`), one second of log time per SESSION_MESSAGES messages from 08:00 UTC."""
    produced, session = 0, 0
    while True:
        seconds = 8 * 3600 + session
        hms = f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        for k, (program, text) in enumerate(_session(session)):
            if produced == n_lines:
                return
            host = "" if program == "opendkim" else "feedsubscription "
            pid = 190 if program == "opendkim" else 300 + len(program)
            line = f"Nov 25 {hms} {host}{program}[{pid}]: {text}"
            yield f"2026-11-25T{hms}.{k:06d}000Z {line}" if timestamps else line
            produced += 1
        session += 1
