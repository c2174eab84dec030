"""Submit messages as the app does: SMTP to port 587, STARTTLS verified against a CA, no AUTH.

Prints one JSON object: per-message results (code, reply, queue id, latency) and totals.
Used by the integration tests and the load benchmark; runs inside the test network.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import smtplib
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate


class Client(smtplib.SMTP):
    def __init__(self, host: str, port: int, tls_name: str, timeout: float) -> None:
        super().__init__(host, port, local_hostname="app.test", timeout=timeout)
        self._host = tls_name  # verify the certificate's name, not the address dialled


def build(args: argparse.Namespace, i: int, rcpt: str) -> bytes:
    msg = EmailMessage()
    header_from = args.sender if args.from_header is None else args.from_header
    if header_from:
        msg["From"] = header_from
    msg["To"] = rcpt
    msg["Subject"] = f"{args.subject} {i}"
    msg["Date"] = formatdate()
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@feedsubscription.com>"
    msg["X-Test-Seq"] = str(i)
    if args.run:
        msg["X-Test-Run"] = args.run
    for header in args.header:
        name, _, value = header.partition(":")
        msg[name.strip()] = value.strip()
    msg.set_content(f"Message {i} of the smtp-out tests.\n" + "x" * args.body_bytes + "\n")
    return msg.as_bytes()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=587)
    p.add_argument("--to", action="append", required=True, help="recipient; repeat to cycle")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--sender", default="newsletter@feedsubscription.com", help="envelope sender (and From:)")
    p.add_argument("--from-header", default=None, help="the From: header instead of the sender ('': none)")
    p.add_argument("--subject", default="smtp-out test")
    p.add_argument("--ca", default="/material/ca.pem")
    p.add_argument("--tls-name", default="feedsubscription.com")
    p.add_argument("--no-tls", action="store_true")
    p.add_argument("--body-bytes", type=int, default=200)
    p.add_argument("--per-connection", type=int, default=50, help="messages per SMTP session")
    p.add_argument("--run", default="", help="X-Test-Run header, to tell runs apart at the sink")
    p.add_argument("--header", action="append", default=[], help="'Name: value', a further header; repeat")
    p.add_argument(
        "--interval", type=float, default=0.0, help="seconds between messages (one connection each)"
    )
    p.add_argument(
        "--retry-for",
        type=float,
        default=0.0,
        help="retry a message refused with 4xx or a failed connection for up to this many seconds",
    )
    args = p.parse_args()
    if args.interval or args.retry_for:
        paced(args)
        return

    ctx = tls_context(args)
    results: list[dict[str, object]] = []
    lock = threading.Lock()
    jobs = list(range(args.count))
    tls_seen: set[str] = set()

    def worker(indices: list[int]) -> None:
        smtp: Client | None = None
        sent_on_conn = 0
        for i in indices:
            rcpt = args.to[i % len(args.to)]
            started = time.monotonic()
            if smtp is None or sent_on_conn >= args.per_connection:
                if smtp is not None:
                    with contextlib.suppress(OSError, smtplib.SMTPException):
                        smtp.quit()
                smtp, sent_on_conn = None, 0
                code, text, opened = attempt(session, args, ctx)
                if opened is None:
                    with lock:
                        results.append(row(i, rcpt, code, text, latency=time.monotonic() - started))
                    continue
                smtp = opened
                if not args.no_tls:
                    with lock:
                        tls_seen.add(str(smtp.sock.version()))  # type: ignore[union-attr]
            code, text, kept = attempt(send, smtp, args, i, rcpt)
            smtp, sent_on_conn = kept, sent_on_conn + 1
            with lock:
                results.append(row(i, rcpt, code, text, latency=time.monotonic() - started))
        if smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.quit()

    started = time.monotonic()
    n = max(1, args.concurrency)
    with ThreadPoolExecutor(max_workers=n) as pool:
        for k in range(n):
            pool.submit(worker, jobs[k::n])
    elapsed = time.monotonic() - started
    results.sort(key=lambda r: int(r["seq"]))  # type: ignore[arg-type]
    accepted = sum(1 for r in results if r["code"] == 250)
    print(json.dumps({"elapsed": elapsed, "accepted": accepted, "tls": sorted(tls_seen), "results": results}))


def tls_context(args: argparse.Namespace) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def session(args: argparse.Namespace, ctx: ssl.SSLContext) -> tuple[int, str, Client]:
    """A new SMTP session, after EHLO (and STARTTLS unless --no-tls)."""
    smtp = Client(args.host, args.port, args.tls_name, 10 if args.interval or args.retry_for else 30)
    smtp.ehlo()
    if not args.no_tls:
        smtp.starttls(context=ctx)
        smtp.ehlo()
    return 220, "", smtp


def transaction(smtp: Client, args: argparse.Namespace, i: int, rcpt: str) -> tuple[int, str]:
    """MAIL, RCPT and DATA on an open session: the code and text of the last reply."""
    code, reply = smtp.mail(args.sender)
    if code == 250:
        code, reply = smtp.rcpt(rcpt)
    if code in (250, 251):
        code, reply = smtp.data(build(args, i, rcpt))
    else:
        smtp.rset()
    return code, reply.decode("utf-8", "replace")


def send(smtp: Client, args: argparse.Namespace, i: int, rcpt: str) -> tuple[int, str, Client]:
    """One message on an open session, which can be used again afterwards."""
    return (*transaction(smtp, args, i, rcpt), smtp)


def attempt(step, *step_args):  # type: ignore[no-untyped-def]
    """Run `step` (returning code, text, session); a refusal or a broken connection becomes its
    code and text (0 for a connection that failed) and no session to go on with."""
    try:
        return step(*step_args)
    except smtplib.SMTPResponseException as exc:
        return exc.smtp_code, exc.smtp_error.decode("utf-8", "replace"), None
    except (OSError, smtplib.SMTPException) as exc:
        return 0, f"{type(exc).__name__}: {exc}", None


def row(i: int, rcpt: str, code: int, text: str, **extra: object) -> dict[str, object]:
    queue_id = text.rsplit("queued as ", 1)[1].strip() if "queued as " in text else None
    return {"seq": i, "rcpt": rcpt, "code": code, "reply": text, "queue_id": queue_id, **extra}


def paced(args: argparse.Namespace) -> None:
    """One message every --interval seconds, each on its own connection, retried as a real client
    would (4xx, refused or dropped connections) every 0.1 s for up to --retry-for seconds."""
    ctx = tls_context(args)
    results = []
    started = time.monotonic()
    for i in range(args.count):
        rcpt = args.to[i % len(args.to)]
        first = time.time()
        deadline = time.monotonic() + args.retry_for
        attempts = refused = tempfailed = 0
        while True:
            attempts += 1
            code, text, smtp = attempt(session, args, ctx)
            if smtp is not None:
                code, text, smtp = attempt(send, smtp, args, i, rcpt)
                with contextlib.suppress(OSError, smtplib.SMTPException):
                    smtp and smtp.quit()
            if code == 250 or 500 <= code < 600 or time.monotonic() > deadline:
                break
            refused += code == 0
            tempfailed += 400 <= code < 500
            time.sleep(0.1)
        done = time.time()
        results.append(row(i, rcpt, code, text, attempts=attempts, refused=refused, tempfailed=tempfailed,
                           first=first, done=done, latency=done - first))  # fmt: skip
        time.sleep(max(0.0, args.interval - (time.time() - first)))
    accepted = sum(1 for r in results if r["code"] == 250)
    summary = {"elapsed": time.monotonic() - started, "accepted": accepted, "tls": [], "results": results}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
