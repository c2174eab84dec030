"""One pass over an smtp-out container's log: what it accepted, signed, delivered, refused, broke.

The lines are those `docker logs` returns, with or without its RFC 3339 timestamp prefix
(timestamps=True):

    [2026-11-25T14:52:09.123456789Z ]Nov 25 14:52:09 feedsubscription postfix/smtp[306]: <text>
    [...]Nov 25 14:52:09 opendkim[190]: <text>        (OpenDKIM through busybox syslogd -S)
    [...][smtp-out] <text>                             (the entrypoint)

Memory stays bounded whatever the log's length: counters, at most MAX_EXAMPLES lines per kind
of problem, and flags for each message submitted in the window only until both its DKIM
signature and its queue entry were seen (at most MAX_TRACKED at once).

`problem` judges one line by the severity after its program's tag (the smoke test and the
config test read the log through it).

Size (~380 lines): the summariser is one state machine over Postfix's and OpenDKIM's line
formats; its regexes, counters and per-message tracking are kept in one place on purpose, and
`problem` reads the same formats with the same patterns (one definition of a bad log line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

#: Lines kept per kind of problem, and characters kept per line.
MAX_EXAMPLES = 3
EXAMPLE_CHARS = 300
#: Submitted messages followed at once; past this the oldest is settled (see LogSummariser).
MAX_TRACKED = 10_000
#: Delivery statuses always present in LogSummary.by_status (others are added as seen).
STATUSES = ("sent", "deferred", "bounced", "expired")
#: OpenDKIM's line for a signed message ("<queue id>: DKIM-Signature field added (s=.., d=..)"):
#: the key-independent part of dkim.SIGNED_LOG_LINE, since any signature counts here.
SIGNED_MARK = "DKIM-Signature field added"
#: The canary's envelope sender (ops.canary.SENDER_LOCAL_PART): its messages are left out of the
#: subscription-header figures.
CANARY_SENDER = "from=<smtp-out-canary@"
#: RFC 8058's one-click value of List-Unsubscribe-Post.
ONE_CLICK = "List-Unsubscribe=One-Click"

_COUNTERS = (
    "accepted", "signed", "unsigned", "relay_denied", "refusals", "tls_inbound", "tls_outbound",
    "milter_failures", "dkim_errors", "permission_problems", "warnings", "errors",
    "canary", "list_unsubscribe", "one_click",
)  # fmt: skip
_SEVERITIES = frozenset(("warning", "error", "fatal", "panic"))
#: A Postfix queue id: short (hex) or long (enable_long_queue_ids, with a digit).
_QUEUE_ID = re.compile(r"[0-9A-F]{6,}|(?=[0-9A-Za-z]*[0-9])[0-9A-Za-z]{10,}")
#: Postfix's milter errors (src/milter/milter8.c): "milter <name>: ...", "<qid>: milter <name>: ...",
#: "connect to Milter service <name>: ..." - inet: and unix: sockets alike.
_MILTER = re.compile(r"(?:\S+: )?milter \S+: |connect to Milter service ")
_TLS = re.compile(r"TLS library problem|TLS support|TLS not available|tlsproxy handshake failed")
_PERMISSION = re.compile(
    r"Permission denied|Operation not permitted|not owned by|group or other writable"
    r"|key data is not secure|symlink leaves directory|not set-gid"
)
#: OpenDKIM logs through busybox syslogd -S, which drops the priority: errors go by their words.
_DKIM_ERROR = re.compile(
    r"error|failed|can't |cannot |could not|not found|unavailable|corrupt|unknown key|missing|overflow"
    r"|\(\): |terminating with status [1-9]",
    re.IGNORECASE,
)
#: A program's own diagnostic on stderr, without syslog's prefix ("postconf: warning: ...").
_BARE_TAG = re.compile(r"[\w./-]+(?:\[\d+\])?: (warning|error|fatal|panic): ")
_QUEUED, _SIGNED = 1, 2
#: Headers the submission cleanup logged (header_checks INFO) for a tracked message.
_LIST_UNSUBSCRIBE, _ONE_CLICK = 4, 8


@dataclass(frozen=True)
class LogSummary:
    """What one window of one container's log shows. Counts are of log lines unless said otherwise.

    accepted: messages submitted over SMTP (smtpd `client=`) that reached the queue (qmgr
    `(queue active)`), both in the window. signed: OpenDKIM `DKIM-Signature field added` lines.
    unsigned: accepted messages delivered, expired or removed with no signature line - a message
    still waiting for its first delivery when the window ends is not judged.
    by_status: delivery attempts by status (a deferred message counts once per attempt; expired
    once per message); by_transport: the same per master.cf service (smtp, ms-throttle, ...).
    relay_denied: `reject:` lines saying Relay access denied; refusals: other `reject:` lines.
    tls_inbound/tls_outbound: TLS failure lines of the submission server / of the SMTP client
    (SSL_accept/SSL_connect error, TLS library problem, Cannot start TLS, TLS support disabled).
    milter_failures: Postfix's milter warnings and milter-reject lines; dkim_errors: OpenDKIM's
    error lines. permission_problems: not owned / writable / Permission denied / insecure key.
    canary: accepted messages from the canary's envelope sender (left out of the next two).
    list_unsubscribe: accepted messages whose List-Unsubscribe header the submission cleanup
    logged (header_checks INFO); one_click: those that also carried List-Unsubscribe-Post:
    List-Unsubscribe=One-Click (RFC 8058).
    first_seen/last_seen: Docker's timestamp when the lines carry one, else syslog's.
    examples: up to MAX_EXAMPLES lines per kind of problem.
    """

    lines: int = 0
    first_seen: str | None = None
    last_seen: str | None = None
    accepted: int = 0
    signed: int = 0
    unsigned: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    by_transport: dict[str, dict[str, int]] = field(default_factory=dict)
    relay_denied: int = 0
    refusals: int = 0
    tls_inbound: int = 0
    tls_outbound: int = 0
    milter_failures: int = 0
    dkim_errors: int = 0
    permission_problems: int = 0
    warnings: int = 0
    errors: int = 0
    canary: int = 0
    list_unsubscribe: int = 0
    one_click: int = 0
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogSummary:
        """The inverse of dataclasses.asdict (after a JSON round trip)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["examples"] = {k: tuple(v) for k, v in dict(values.get("examples", {})).items()}
        return cls(**values)


class LogSummariser:
    """Feed lines in log order with `feed`; `summary()` at any point gives the figures so far."""

    def __init__(self) -> None:
        self.lines = 0
        self.first_seen: str | None = None
        self.last_seen: str | None = None
        self.counts = dict.fromkeys(_COUNTERS, 0)
        self.by_status = dict.fromkeys(STATUSES, 0)
        self.by_transport: dict[str, dict[str, int]] = {}
        self.examples: dict[str, list[str]] = {}
        self._tracked: dict[str, int] = {}  # queue id -> _QUEUED | _SIGNED, insertion-ordered

    def feed(self, raw: str) -> None:
        """Take one log line (a trailing newline is ignored)."""
        line = raw.rstrip("\r\n")
        self.lines += 1
        stamp = None
        if line[10:11] == "T" and line[4:5] == "-":  # Docker's RFC 3339 prefix
            stamp, _, line = line.partition(" ")
        if line.startswith("[smtp-out] "):
            self._entrypoint(line)
        elif line[15:16] == " " and line[9:10] == ":":  # "Mon DD HH:MM:SS "
            stamp = stamp or line[:15]
            self._syslog(line)
        if stamp:
            self.last_seen = stamp
            if self.first_seen is None:
                self.first_seen = stamp

    def summary(self) -> LogSummary:
        """The figures so far, as a frozen LogSummary."""
        return LogSummary(
            lines=self.lines,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            by_status=dict(self.by_status),
            by_transport={t: dict(s) for t, s in sorted(self.by_transport.items())},
            examples={k: tuple(v) for k, v in self.examples.items()},
            **self.counts,
        )

    # --- line kinds -----------------------------------------------------------------------

    def _entrypoint(self, line: str) -> None:
        text = line[11:]
        if text.startswith("ERROR:"):
            self._problem("errors", "errors", line)
        elif text.startswith("WARNING:"):
            self._problem("warnings", "warnings", line)
        else:
            return
        if _PERMISSION.search(text):
            self._problem("permission_problems", "permission", line)

    def _syslog(self, line: str) -> None:
        tagged = _program_text(line[16:])
        if tagged is None:
            return
        program, text = tagged
        if program.startswith("postfix/"):
            self._postfix(program, text, line)
        elif program == "opendkim":
            self._opendkim(text, line)

    def _postfix(self, program: str, text: str, line: str) -> None:
        first, sep, rest = text.partition(": ")
        if not sep:
            return
        if first in _SEVERITIES:
            self._complaint(program, first, rest, line)
        elif first == "NOQUEUE":
            self._refusal(rest, line)
        elif _QUEUE_ID.fullmatch(first):
            self._queue_event(program, first, rest, line)
        elif first.startswith(("SSL_accept error", "SSL_connect error")):
            self._tls(program, line)

    def _opendkim(self, text: str, line: str) -> None:
        if SIGNED_MARK in text:
            self._signed(text[: text.find(":")])
        elif _PERMISSION.search(text):
            self._problem("permission_problems", "permission", line)
            self._problem("warnings", "warnings", line)
        elif _DKIM_ERROR.search(text):
            self._problem("dkim_errors", "dkim", line)
            self._problem("errors", "errors", line)

    def _complaint(self, program: str, severity: str, text: str, line: str) -> None:
        """A Postfix warning/error/fatal/panic line; also sorted by what it is about."""
        if severity == "warning":
            self._problem("warnings", "warnings", line)
        else:
            self._problem("errors", "errors", line)
        if _MILTER.match(text):
            self._problem("milter_failures", "milter", line)
        elif _TLS.search(text):
            self._tls(program, line)
        if _PERMISSION.search(text):
            self._problem("permission_problems", "permission", line)

    def _refusal(self, text: str, line: str) -> None:
        """A '<qid or NOQUEUE>: reject: ...' or '...: milter-reject: ...' line."""
        if text.startswith("milter-reject: "):
            self._problem("milter_failures", "milter", line)
        elif text.startswith("reject: "):
            if "Relay access denied" in text:
                self._problem("relay_denied", "relay_denied", line)
            else:
                self._problem("refusals", "refusals", line)

    def _queue_event(self, program: str, qid: str, text: str, line: str) -> None:
        if text.startswith("to=<"):
            self._delivery(program, qid, text, line)
        elif program.endswith("/qmgr"):
            if text == "removed":
                self._settle(qid, line)
            elif text.endswith("(queue active)"):
                self._queued(qid, text)
            elif ", status=expired" in text:
                self.by_status["expired"] += 1
                self._settle(qid, line)
        elif text.startswith("client="):
            if program.endswith("smtpd"):
                self._track(qid)
        elif text.startswith(("reject: ", "milter-reject: ")):
            self._tracked.pop(qid, None)
            self._refusal(text, line)
        elif text.startswith("Cannot start TLS"):
            self._tls(program, line)
        elif text.startswith("info: header List-Unsubscribe") and program.endswith("cleanup"):
            self._header(qid, text)

    def _delivery(self, program: str, qid: str, text: str, line: str) -> None:
        at = text.find(", status=")
        if at < 0:
            return
        end = text.find(" ", at + 9)
        status = text[at + 9 : end] if end >= 0 else text[at + 9 :]
        self.by_status[status] = self.by_status.get(status, 0) + 1
        parts = program.split("/")  # postfix/smtp, postfix/ms-throttle/smtp, postfix/error
        per = self.by_transport.setdefault(parts[1] if len(parts) > 2 else parts[-1], {})
        per[status] = per.get(status, 0) + 1
        self._settle(qid, line)

    # --- per-message signing state --------------------------------------------------------

    def _track(self, qid: str) -> None:
        if len(self._tracked) >= MAX_TRACKED:
            oldest = next(iter(self._tracked))
            self._settle(oldest, f"{oldest}: queued, no {SIGNED_MARK} line in {MAX_TRACKED} later messages")
        self._tracked[qid] = 0

    def _header(self, qid: str, text: str) -> None:
        """'info: header <name>: <value> from <client>; from=<sender> to=<rcpt> ...' (header_checks
        INFO in the submission cleanup: postfix/cleanup, postfix/submission/cleanup, ...)."""
        flags = self._tracked.get(qid)
        if flags is None:
            return
        name, _, rest = text[len("info: header ") :].partition(": ")
        end = rest.rfind("; from=")
        cut = rest.rfind(" from ", 0, end if end >= 0 else len(rest))
        value = (rest[:cut] if cut >= 0 else rest).strip()
        if name.lower() == "list-unsubscribe":
            self._tracked[qid] = flags | _LIST_UNSUBSCRIBE
        elif name.lower() == "list-unsubscribe-post" and value.lower() == ONE_CLICK.lower():
            self._tracked[qid] = flags | _ONE_CLICK

    def _queued(self, qid: str, text: str = "") -> None:
        flags = self._tracked.get(qid)
        if flags is None or flags & _QUEUED:
            return  # submitted before the window, or a deferred message coming back
        self.counts["accepted"] += 1
        if CANARY_SENDER in text:
            self.counts["canary"] += 1
        elif flags & _LIST_UNSUBSCRIBE:
            self.counts["list_unsubscribe"] += 1
            if flags & _ONE_CLICK:
                self.counts["one_click"] += 1
        if flags & _SIGNED:
            del self._tracked[qid]
        else:
            self._tracked[qid] = flags | _QUEUED

    def _signed(self, qid: str) -> None:
        self.counts["signed"] += 1
        flags = self._tracked.get(qid)
        if flags is None:
            return
        if flags & _QUEUED:
            del self._tracked[qid]
        else:
            self._tracked[qid] = flags | _SIGNED

    def _settle(self, qid: str, line: str) -> None:
        """The message went (delivered, expired, removed): queued and never signed is a problem."""
        flags = self._tracked.pop(qid, None)
        if flags is not None and flags & (_QUEUED | _SIGNED) == _QUEUED:
            self._problem("unsigned", "unsigned", line)

    # --- counting -------------------------------------------------------------------------

    def _tls(self, program: str, line: str) -> None:
        inbound = program.endswith(("smtpd", "tlsproxy", "postscreen"))
        self._problem("tls_inbound" if inbound else "tls_outbound", "tls", line)

    def _problem(self, counter: str, kind: str, line: str) -> None:
        self.counts[counter] += 1
        kept = self.examples.setdefault(kind, [])
        if len(kept) < MAX_EXAMPLES:
            kept.append(line[:EXAMPLE_CHARS])


class Problem(NamedTuple):
    """A log line that reports a problem, and its severity: warning, error, fatal or panic."""

    severity: str
    line: str

    @property
    def failing(self) -> bool:
        """error, fatal and panic fail a check; a warning is reported (WARN)."""
        return self.severity != "warning"


def problem(raw: str) -> Problem | None:
    """The problem a log line reports, judged by the severity after its program's tag, never by
    a word anywhere in it: Postfix's `<program>[pid]: warning|error|fatal|panic: ...`, the
    entrypoint's `[smtp-out] ERROR:|WARNING:`, a bare `postconf: warning: ...`, and OpenDKIM's
    lines (busybox syslogd drops their priority: judged as the summariser judges them). A
    delivery by Postfix's `error` agent (`postfix/error[..]: <qid>: ... status=deferred`) or a
    TLS warning that quotes OpenSSL's `error:0A00...` is not an error."""
    line = raw.rstrip("\r\n")
    if line[10:11] == "T" and line[4:5] == "-":  # Docker's RFC 3339 prefix
        line = line.partition(" ")[2]
    if line.startswith("[smtp-out] "):
        text = line[11:]
        if text.startswith("ERROR:"):
            return Problem("error", line)
        return Problem("warning", line) if text.startswith("WARNING:") else None
    if not (line[15:16] == " " and line[9:10] == ":"):  # not "Mon DD HH:MM:SS "
        m = _BARE_TAG.match(line)
        return Problem(m.group(1), line) if m else None
    tagged = _program_text(line[16:])
    if tagged is None:
        return None
    program, text = tagged
    if program == "postfix" or program.startswith("postfix/"):
        first = text.partition(": ")[0]
        return Problem(first, line) if first in _SEVERITIES else None
    if program == "opendkim" and SIGNED_MARK not in text:
        if _PERMISSION.search(text):
            return Problem("warning", line)
        if _DKIM_ERROR.search(text):
            return Problem("error", line)
    return None


def problems(log: str) -> list[Problem]:
    """Every problem line of a log, in order."""
    return [p for p in map(problem, log.splitlines()) if p is not None]


def _program_text(body: str) -> tuple[str, str] | None:
    """A syslog line's body after the time ("host program[pid]: text") -> (program, text)."""
    colon = body.find(": ")
    if colon < 0:
        return None
    program = body[body.rfind(" ", 0, colon) + 1 : colon]
    bracket = program.find("[")
    return (program[:bracket] if bracket >= 0 else program), body[colon + 2 :]


def summarise(lines: Iterable[str]) -> LogSummary:
    """Summarise a whole log (an iterable of lines, consumed once)."""
    summariser = LogSummariser()
    feed = summariser.feed
    for line in lines:
        feed(line)
    return summariser.summary()


def lines_from_chunks(chunks: Iterable[bytes | str], max_line: int = 65_536) -> Iterator[str]:
    """Lines from a stream of chunks split anywhere (the Docker SDK's logs(stream=True));
    decodes UTF-8 leniently; a line longer than `max_line` is cut there."""
    pending = b""
    for chunk in chunks:
        data = pending + (chunk.encode() if isinstance(chunk, str) else chunk)
        *complete, pending = data.split(b"\n")
        for line in complete:
            yield line[:max_line].decode("utf-8", "replace")
        if len(pending) > max_line:
            yield pending[:max_line].decode("utf-8", "replace")
            pending = b""
    if pending:
        yield pending.decode("utf-8", "replace")
