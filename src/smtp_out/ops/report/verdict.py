"""The burn-in report (the spec's Phases 4-5): figures and red flags for one or two containers.

Facts are gathered elsewhere (the container's log since a point in time, summarised by
`logparse.summarise` in one pass; its queue from `postqueue -j`); this module only judges and
renders them. Each of the spec's red flags ("abort cutover if seen") is one check in RED_FLAGS,
with its threshold a module constant; any raised red flag makes the exit code 1.

Size (~330 lines): one concern, the verdict and its three renderings (text, side by side, JSON
and back); the red-flag table, its thresholds and the renderers read best together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from ...checks import Check, Report, Result, exit_code, run_checks
from ...checks import render_text as render_checks
from ..queue import listing
from .logparse import STATUSES, LogSummary, summarise

#: Queue buildup: more messages than this in the queue is a red flag. The relay sends about 1k
#: messages a day in the 8 UTC window and the queue is empty outside it; throttled transports
#: (ms-throttle 5 s, comcast-throttle 15 s per message) keep some mail queued during the window.
QUEUE_MAX_MESSAGES = 100
#: Stuck messages: a message queued longer than this is a red flag.
QUEUE_MAX_AGE_HOURS = 4.0
#: Log lines tolerated per red flag (the spec's flags are "if seen": zero).
ALLOWED_RELAY_DENIED = 0
ALLOWED_MILTER_FAILURES = 0
ALLOWED_TLS_FAILURES = 0
ALLOWED_PERMISSION_PROBLEMS = 0
ALLOWED_UNSIGNED = 0
ALLOWED_ERRORS = 0


@dataclass(frozen=True)
class QueueSummary:
    """The queue at one moment: messages, recipients and bytes; messages per queue (active,
    deferred, hold, ...); the oldest message's age in seconds and id (None when empty)."""

    size: int = 0
    recipients: int = 0
    bytes: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)
    oldest_age_s: int | None = None
    oldest_queue_id: str | None = None

    @classmethod
    def from_postqueue_json(cls, text: str, now: float) -> QueueSummary:
        """Summarise `postqueue -j` output (one JSON object per line) as seen at epoch `now`.
        Raises ValueError on a line that is not a JSON object."""
        size = recipients = total = 0
        by_queue: dict[str, int] = {}
        oldest: tuple[float, str] | None = None
        for message in listing.parse(text):
            size += 1
            recipients += len(message.get("recipients") or ())
            total += int(message.get("message_size", 0))
            queue = str(message.get("queue_name", "unknown"))
            by_queue[queue] = by_queue.get(queue, 0) + 1
            arrived = float(message.get("arrival_time", now))
            if oldest is None or arrived < oldest[0]:
                oldest = (arrived, str(message.get("queue_id", "")))
        age = None if oldest is None else max(0, int(now - oldest[0]))
        return cls(size, recipients, total, dict(sorted(by_queue.items())), age, oldest and oldest[1])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueueSummary:
        """The inverse of dataclasses.asdict (after a JSON round trip)."""
        return cls(**dict(data))


@dataclass(frozen=True)
class BurnInFacts:
    """Everything the report judges for one container: its log summary over the window starting
    at `since` (as the caller gave it to Docker), and its queue (None when it could not be read)."""

    container: str
    since: str
    logs: LogSummary
    queue: QueueSummary | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BurnInFacts:
        """The inverse of dataclasses.asdict (after a JSON round trip)."""
        queue = data.get("queue")
        return cls(
            str(data["container"]),
            str(data["since"]),
            LogSummary.from_dict(data["logs"]),
            None if queue is None else QueueSummary.from_dict(queue),
        )


def build_facts(
    container: str, since: str, lines: Iterable[str], postqueue_json: str | None, now: float
) -> BurnInFacts:
    """Facts from raw inputs: the log lines (consumed once, in order) and the `postqueue -j`
    output read at epoch `now` (None when it could not be read)."""
    queue = None if postqueue_json is None else QueueSummary.from_postqueue_json(postqueue_json, now)
    return BurnInFacts(container, since, summarise(lines), queue)


class Seen(NamedTuple):
    """Log lines that show one kind of problem: how many, and the first one."""

    lines: int
    first: str = ""

    def __repr__(self) -> str:
        return f"{self.lines} line(s), first: {self.first}" if self.lines else "none"


class QueueLoad(NamedTuple):
    """The queue's size and the age of its oldest message."""

    messages: int
    oldest_hours: float

    def __repr__(self) -> str:
        return f"{self.messages} message(s), oldest {self.oldest_hours:.1f} h"


class Signing(NamedTuple):
    """Submitted messages that reached the queue, signature lines, and accepted-but-unsigned ones."""

    accepted: int
    signed: int
    unsigned: int
    first: str = ""

    def __repr__(self) -> str:
        text = f"accepted {self.accepted}, signed {self.signed}, unsigned {self.unsigned}"
        return f"{text}, first: {self.first}" if self.unsigned else text


def _seen(facts: BurnInFacts, counters: Sequence[str], kinds: Sequence[str]) -> Seen:
    examples = [line for kind in kinds for line in facts.logs.examples.get(kind, ())]
    return Seen(sum(int(getattr(facts.logs, c)) for c in counters), next(iter(examples), ""))


def _no_lines(
    name: str, counters: Sequence[str], kinds: Sequence[str], allowed: int, expect: str
) -> Check[BurnInFacts]:
    """A red flag raised when the log holds more than `allowed` lines counted in `counters`."""
    return Check(
        name,
        lambda f: _seen(f, counters, kinds),
        lambda v: isinstance(v, Seen) and v.lines <= allowed,
        expect,
    )


def _queue_load(facts: BurnInFacts) -> QueueLoad | str:
    if facts.queue is None:
        return "not measured (postqueue -j could not be read)"
    return QueueLoad(facts.queue.size, (facts.queue.oldest_age_s or 0) / 3600)


def _signing(facts: BurnInFacts) -> Signing:
    logs = facts.logs
    return Signing(logs.accepted, logs.signed, logs.unsigned, (logs.examples.get("unsigned") or ("",))[0])


RED_FLAGS: tuple[Check[BurnInFacts], ...] = (
    Check(
        "Log lines read",
        lambda f: f.logs.lines,
        lambda v: isinstance(v, int) and v > 0,
        "at least one line: an empty window (wrong container or --since) proves nothing",
    ),
    _no_lines(
        "No relay access denied", ("relay_denied",), ("relay_denied",), ALLOWED_RELAY_DENIED,
        "no 'Relay access denied': a client outside mynetworks, or mynetworks wrong",
    ),
    _no_lines(
        "No DKIM milter failures", ("milter_failures", "dkim_errors"), ("milter", "dkim"),
        ALLOWED_MILTER_FAILURES, "no Postfix milter error/milter-reject and no OpenDKIM error",
    ),
    Check(
        "No queue buildup or stuck messages",
        _queue_load,
        lambda v: isinstance(v, QueueLoad)
        and v.messages <= QUEUE_MAX_MESSAGES
        and v.oldest_hours <= QUEUE_MAX_AGE_HOURS,
        f"at most {QUEUE_MAX_MESSAGES} queued, none older than {QUEUE_MAX_AGE_HOURS:g} h",
    ),
    _no_lines(
        "No TLS handshake failures", ("tls_inbound", "tls_outbound"), ("tls",), ALLOWED_TLS_FAILURES,
        "no SSL_accept/SSL_connect error, TLS library problem or Cannot start TLS, in or out",
    ),
    _no_lines(
        "No ownership/permission warnings", ("permission_problems",), ("permission",),
        ALLOWED_PERMISSION_PROBLEMS, "no not-owned/writable/Permission denied/insecure-key line",
    ),
    Check(
        "Every accepted message signed",
        _signing,
        lambda v: isinstance(v, Signing) and v.unsigned <= ALLOWED_UNSIGNED,
        "every submitted message that left the queue had a DKIM-Signature line",
    ),
    _no_lines(
        "No errors in logs", ("errors",), ("errors",), ALLOWED_ERRORS,
        "no Postfix error/fatal/panic, OpenDKIM error or entrypoint ERROR line",
    ),
)  # fmt: skip


def judge(facts: BurnInFacts, started: float | None = None) -> Report:
    """Run RED_FLAGS against the facts (`started`: time.monotonic() when gathering began)."""
    title = f"SMTP-OUT BURN-IN REPORT: {facts.container} since {facts.since}"
    return run_checks(title, RED_FLAGS, facts, time.monotonic() if started is None else started)


def exit_code_of(reports: Iterable[Report]) -> int:
    """1 when any report raised a red flag (or judged nothing), else 0."""
    return max((exit_code(r) for r in reports), default=1)


# --- figures --------------------------------------------------------------------------------

Row = tuple[str, Callable[[BurnInFacts], object]]

_LOG_ROWS: tuple[Row, ...] = (
    ("log lines", lambda f: f.logs.lines),
    ("first line", lambda f: f.logs.first_seen or "-"),
    ("last line", lambda f: f.logs.last_seen or "-"),
    ("accepted (submission)", lambda f: f.logs.accepted),
    ("DKIM-signed", lambda f: f.logs.signed),
    ("accepted, unsigned", lambda f: f.logs.unsigned),
    ("one-click unsubscribe (RFC 8058)", lambda f: _one_click(f.logs)),
    *((f"status={s}", lambda f, s=s: f.logs.by_status.get(s, 0)) for s in STATUSES),
)
_PROBLEM_ROWS: tuple[Row, ...] = (
    ("relay access denied", lambda f: f.logs.relay_denied),
    ("other refusals", lambda f: f.logs.refusals),
    ("TLS failures in/out", lambda f: f"{f.logs.tls_inbound}/{f.logs.tls_outbound}"),
    ("milter failures", lambda f: f.logs.milter_failures),
    ("OpenDKIM errors", lambda f: f.logs.dkim_errors),
    ("ownership/permission", lambda f: f.logs.permission_problems),
    ("warnings", lambda f: f.logs.warnings),
    ("errors", lambda f: f.logs.errors),
    ("queue size", lambda f: "-" if f.queue is None else f.queue.size),
    ("queue by state", lambda f: _by_queue(f.queue)),
    ("oldest queued", lambda f: _age(f.queue)),
)


def _one_click(logs: LogSummary) -> str:
    """Accepted messages with List-Unsubscribe and List-Unsubscribe-Post: List-Unsubscribe=One-Click,
    of those accepted (the canary's left out): a figure, since confirmation mail needs neither."""
    total = logs.accepted - logs.canary
    share = f"{100 * logs.one_click / total:.0f}%" if total else "-"
    text = f"{logs.one_click} of {total} accepted ({share})"
    if logs.list_unsubscribe > logs.one_click:
        text += f", List-Unsubscribe without one-click: {logs.list_unsubscribe - logs.one_click}"
    return text + (f", canary left out: {logs.canary}" if logs.canary else "")


def _by_queue(queue: QueueSummary | None) -> str:
    if queue is None:
        return "not measured"
    return ", ".join(f"{name} {n}" for name, n in queue.by_queue.items()) or "empty"


def _age(queue: QueueSummary | None) -> str:
    if queue is None or queue.oldest_age_s is None:
        return "-"
    seconds = queue.oldest_age_s
    return f"{seconds} s" if seconds < 120 else f"{seconds / 3600:.1f} h"


def _transport_row(transport: str) -> Row:
    def cell(f: BurnInFacts) -> str:
        per = f.logs.by_transport.get(transport, {})
        return "/".join(str(per.get(s, 0)) for s in ("sent", "deferred", "bounced"))

    return (f"via {transport} (sent/def/bnc)", cell)


def figure_rows(facts: Sequence[BurnInFacts]) -> list[Row]:
    """The figures' rows, with one row per transport any of the containers used."""
    transports = sorted({t for f in facts for t in f.logs.by_transport})
    return [*_LOG_ROWS, *(_transport_row(t) for t in transports), *_PROBLEM_ROWS]


# --- renderers ------------------------------------------------------------------------------


def render_text(facts: BurnInFacts, report: Report) -> str:
    """One container: its figures, then the red flags as checks.render_text shows them."""
    rows = [(label, str(get(facts))) for label, get in figure_rows([facts])]
    width = max(len(label) for label, _ in rows)
    lines = [f"--- {facts.container}: figures since {facts.since} ---"]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines) + "\n" + render_checks(report)


def render_table(items: Sequence[tuple[BurnInFacts, Report]]) -> str:
    """Containers side by side (e.g. smtp-out and smtp-out-new): one column each, a row per
    figure, then each red flag's verdict, then the overall verdict; failed flags listed below."""
    rows: list[tuple[str, list[str]]] = [("", [f.container for f, _ in items])]
    rows += [(label, [str(get(f)) for f, _ in items]) for label, get in figure_rows([f for f, _ in items])]
    rows.append(("", ["" for _ in items]))
    verdicts = [{x.name: "PASS" if x.passed else "FAIL" for x in r.results} for _, r in items]
    rows += [(c.name, [v.get(c.name, "-") for v in verdicts]) for c in RED_FLAGS]
    rows.append(("VERDICT", ["OK" if r.ok else f"ABORT ({len(r.failed)} red flags)" for _, r in items]))
    width = max(len(label) for label, _ in rows)
    cols = [max(len(row[1][i]) for row in rows) for i in range(len(items))]
    lines = [
        f"{label:<{width}}  " + "  ".join(f"{v:<{c}}" for v, c in zip(values, cols, strict=True))
        for label, values in rows
    ]
    for f, r in items:
        lines += [f"{f.container}: {x.name}: {x.observed} (expected: {x.expect})" for x in r.failed]
    return "\n".join(line.rstrip() for line in lines)


def render_json(items: Sequence[tuple[BurnInFacts, Report]]) -> str:
    """For cron: {"ok", "exit_code", "reports": [{container, title, ok, seconds, facts, checks}]}."""
    reports = [
        {
            "container": f.container,
            "title": r.title,
            "ok": r.ok,
            "seconds": r.seconds,
            "facts": asdict(f),
            "checks": [asdict(x) for x in r.results],
        }
        for f, r in items
    ]
    code = exit_code_of(r for _, r in items)
    return json.dumps({"ok": code == 0, "exit_code": code, "reports": reports}, indent=2)


def parse_json(text: str) -> list[tuple[BurnInFacts, Report]]:
    """The inverse of render_json."""
    out = []
    for item in json.loads(text)["reports"]:
        results = tuple(Result.from_json(x) for x in item["checks"])
        out.append((BurnInFacts.from_dict(item["facts"]), Report(item["title"], results, item["seconds"])))
    return out
