"""The burn-in report on real captured smtp-out logs (tests/unit/data, see its README): exact
figures, each red flag raised where its problem is and nowhere else, renderers, speed."""

from __future__ import annotations

import gzip
import json
import re
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from smtp_out.ops.report import logparse
from smtp_out.ops.report.logparse import LogSummary, lines_from_chunks, summarise
from smtp_out.ops.report.synthetic import synthetic_log
from smtp_out.ops.report.verdict import (
    QUEUE_MAX_AGE_HOURS,
    QUEUE_MAX_MESSAGES,
    RED_FLAGS,
    BurnInFacts,
    QueueSummary,
    build_facts,
    exit_code_of,
    judge,
    parse_json,
    render_json,
    render_table,
    render_text,
)

DATA = Path(__file__).parent / "data"
QUEUE_READ_AT = 1795618446  # when queue-deferred.jsonl was read (epoch seconds)


def lines(name: str) -> list[str]:
    """A captured log's lines, less the comment lines of documented.log."""
    path = DATA / name
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return [ln for ln in text.splitlines() if not ln.startswith("#")]


def figures(summary: LogSummary) -> dict[str, object]:
    data = asdict(summary)
    for key in ("examples", "first_seen", "last_seen", "lines"):
        data.pop(key)
    return data


def facts(name: str, queue: str = "", container: str = "smtp-out-new") -> BurnInFacts:
    return build_facts(container, "24h", lines(name), queue, QUEUE_READ_AT)


def raised(f: BurnInFacts) -> set[str]:
    return {r.name for r in judge(f).failed}


ZERO = dict.fromkeys(
    ["relay_denied", "refusals", "tls_inbound", "tls_outbound", "milter_failures", "dkim_errors",
     "permission_problems", "warnings", "errors", "canary", "list_unsubscribe", "one_click"], 0,
)  # fmt: skip
NO_STATUS = {"sent": 0, "deferred": 0, "bounced": 0, "expired": 0}

EXPECTED = {
    "healthy.log": {
        **ZERO, "accepted": 10, "signed": 10, "unsigned": 0, "by_status": {**NO_STATUS, "sent": 10},
        "by_transport": {"comcast-throttle": {"sent": 2}, "ms-throttle": {"sent": 2}, "smtp": {"sent": 4},
                         "yahoo-throttle": {"sent": 2}},
    },
    # 6 signed messages; opendkim killed (2 sessions refused); 2 accepted unsigned under
    # milter_default_action=accept; opendkim back, 1 signed. 26 deferral attempts of 2 messages.
    "troubled.log": {
        **ZERO, "accepted": 9, "signed": 7, "unsigned": 2,
        "by_status": {"sent": 13, "deferred": 26, "bounced": 4, "expired": 2},
        "by_transport": {"error": {"bounced": 3}, "ms-throttle": {"sent": 2},
                         "smtp": {"sent": 10, "bounced": 1, "deferred": 26}, "yahoo-throttle": {"sent": 1}},
        "relay_denied": 1, "refusals": 2, "tls_inbound": 5, "milter_failures": 6, "warnings": 5,
    },
    # Refused for the insecure key, lost at client=, signed, unsigned (foreign From), signed.
    "permissions.log": {
        **ZERO, "accepted": 3, "signed": 2, "unsigned": 1,
        "by_status": {"sent": 4, "deferred": 2, "bounced": 2, "expired": 0},
        "by_transport": {"error": {"bounced": 1}, "smtp": {"sent": 4, "deferred": 2, "bounced": 1}},
        "tls_outbound": 6, "milter_failures": 4, "dkim_errors": 1, "permission_problems": 11,
        "warnings": 14, "errors": 1,
    },
    "load.log.gz": {
        **ZERO, "accepted": 400, "signed": 400, "unsigned": 0, "by_status": {**NO_STATUS, "sent": 400},
        "by_transport": {"smtp": {"sent": 400}},
    },
    "startup-error.log": {
        **ZERO, "accepted": 0, "signed": 0, "unsigned": 0, "by_status": NO_STATUS, "by_transport": {},
        "errors": 1,
    },
    "tls-config.log": {
        **ZERO, "accepted": 0, "signed": 0, "unsigned": 0, "by_status": {**NO_STATUS, "sent": 2},
        "by_transport": {"smtp": {"sent": 2}}, "tls_inbound": 4, "warnings": 4,
    },
    "documented.log": {
        **ZERO, "accepted": 0, "signed": 0, "unsigned": 0, "by_status": {**NO_STATUS, "sent": 1},
        "by_transport": {"smtp": {"sent": 1}}, "refusals": 3, "milter_failures": 2, "dkim_errors": 3,
        "permission_problems": 4, "warnings": 6, "errors": 5,
    },
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_summary_figures_are_exact_on_captured_logs(name: str) -> None:
    log = lines(name)
    summary = summarise(log)
    assert figures(summary) == EXPECTED[name]
    assert summary.lines == len(log)
    for status in ("sent", "deferred", "bounced", "expired"):  # cross-check with plain counting
        assert summary.by_status[status] == sum(f"status={status}" in ln for ln in log)


def test_docker_timestamps_change_only_the_first_and_last_seen() -> None:
    with_prefix = summarise(lines("healthy.log"))
    without = summarise(ln.split(" ", 1)[1] for ln in lines("healthy.log"))
    assert figures(with_prefix) == figures(without)
    assert with_prefix.first_seen == "2026-11-25T14:51:59.802004262Z"
    assert with_prefix.last_seen == "2026-11-25T14:52:24.266445303Z"
    assert (without.first_seen, without.last_seen) == ("Nov 25 14:51:59", "Nov 25 14:52:24")


def test_a_window_cut_anywhere_never_calls_a_signed_message_unsigned() -> None:
    log = lines("healthy.log")
    for k in range(len(log)):
        assert summarise(log[k:]).unsigned == 0, f"starting at line {k}"
        assert summarise(log[:k]).unsigned == 0, f"ending before line {k}"
    troubled = lines("troubled.log")
    assert all(summarise(troubled[k:]).unsigned <= 2 for k in range(len(troubled)))
    busy = lines("load.log.gz")  # 8 concurrent sessions: the lines of many messages interleave
    assert all(
        summarise(busy[k:]).unsigned == summarise(busy[:k]).unsigned == 0 for k in range(0, len(busy), 13)
    )


def test_tracked_messages_are_bounded_and_an_evicted_queued_unsigned_one_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logparse, "MAX_TRACKED", 5)
    s = logparse.LogSummariser()
    prefix = "Nov 25 08:00:00 feedsubscription postfix"
    s.feed(f"{prefix}/submission/smtpd[1]: ABCDEF000: client=unknown[10.5.5.100]")
    s.feed(f"{prefix}/qmgr[2]: ABCDEF000: from=<a@feedsubscription.com>, size=1, nrcpt=1 (queue active)")
    for n in range(1, 50):  # clients that drop after client=: never queued, never settled
        s.feed(f"{prefix}/submission/smtpd[1]: ABCDEF{n:03d}: client=unknown[10.5.5.100]")
        assert len(s._tracked) <= 5
    assert (s.summary().accepted, s.summary().unsigned) == (1, 1)


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("healthy.log", set()),
        ("load.log.gz", set()),
        ("troubled.log", {"No relay access denied", "No DKIM milter failures", "No TLS handshake failures",
                          "Every accepted message signed"}),
        ("permissions.log", {"No DKIM milter failures", "No TLS handshake failures", "No errors in logs",
                             "No ownership/permission warnings", "Every accepted message signed"}),
        ("tls-config.log", {"No TLS handshake failures"}),
        ("startup-error.log", {"No errors in logs"}),
        ("documented.log", {"No DKIM milter failures", "No ownership/permission warnings",
                            "No errors in logs"}),
    ],
)  # fmt: skip
def test_each_red_flag_is_raised_where_its_problem_is_and_nowhere_else(name: str, flags: set[str]) -> None:
    f = facts(name)
    assert raised(f) == flags
    assert exit_code_of([judge(f)]) == (1 if flags else 0)


def test_an_empty_window_or_an_unread_queue_is_a_red_flag() -> None:
    assert raised(build_facts("smtp-out", "24h", [], "", 0)) == {"Log lines read"}
    unread = build_facts("smtp-out", "24h", lines("healthy.log"), None, 0)
    assert raised(unread) == {"No queue buildup or stuck messages"}


def test_queue_summary_from_postqueue_json() -> None:
    q = QueueSummary.from_postqueue_json((DATA / "queue-deferred.jsonl").read_text(), QUEUE_READ_AT)
    assert q == QueueSummary(2, 2, 787 + 779, {"deferred": 2}, 6, "9FB9220E103")
    held = QueueSummary.from_postqueue_json((DATA / "queue-hold.jsonl").read_text(), QUEUE_READ_AT + 2)
    assert held.by_queue == {"deferred": 1, "hold": 1} and held.oldest_age_s == 8
    assert QueueSummary.from_postqueue_json("", 0) == QueueSummary()
    with pytest.raises(ValueError, match="line 1"):
        QueueSummary.from_postqueue_json("[1, 2]\n", 0)


def test_queue_red_flag_thresholds() -> None:
    text = (DATA / "queue-deferred.jsonl").read_text()
    crowded = "\n".join([text.splitlines()[0]] * (QUEUE_MAX_MESSAGES + 1))
    later = QUEUE_READ_AT + QUEUE_MAX_AGE_HOURS * 3600
    fresh = facts("healthy.log", text)
    stuck = replace(fresh, queue=QueueSummary.from_postqueue_json(text, later))
    big = replace(fresh, queue=QueueSummary.from_postqueue_json(crowded, QUEUE_READ_AT))
    assert raised(fresh) == set()
    assert raised(stuck) == {"No queue buildup or stuck messages"}
    assert raised(big) == {"No queue buildup or stuck messages"}
    observed = next(r for r in judge(stuck).results if not r.passed).observed
    assert observed == "2 message(s), oldest 4.0 h"


def test_text_report_has_figures_then_red_flags() -> None:
    f = facts("troubled.log")
    text = render_text(f, judge(f))
    assert "accepted (submission)              9" in text
    assert "via ms-throttle (sent/def/bnc)     2/0/0" in text
    assert "FAIL  No relay access denied" in text and "Relay access denied;" in text
    assert text.splitlines()[-1].startswith("=== 4 passed, 4 failed")


def test_two_containers_side_by_side() -> None:
    old, new = facts("healthy.log", container="smtp-out"), facts("troubled.log")
    table = render_table([(old, judge(old)), (new, judge(new))]).splitlines()
    assert table[0].split() == ["smtp-out", "smtp-out-new"]
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", ln) for ln in table[1:] if ln.strip())}
    assert rows["accepted (submission)"] == ["10", "9"]
    assert rows["via comcast-throttle (sent/def/bnc)"] == ["2/0/0", "0/0/0"]
    assert rows["No relay access denied"] == ["PASS", "FAIL"]
    assert rows["No queue buildup or stuck messages"] == ["PASS", "PASS"]
    assert rows["VERDICT"] == ["OK", "ABORT (4 red flags)"]
    assert all(c.name in rows for c in RED_FLAGS)
    assert sum(ln.startswith("smtp-out-new: ") for ln in table) == 4  # the failed flags, explained


def test_json_round_trip() -> None:
    items = [(f, judge(f)) for f in (facts("healthy.log", container="smtp-out"), facts("permissions.log"))]
    text = render_json(items)
    data = json.loads(text)
    assert (data["ok"], data["exit_code"]) == (False, 1)
    assert [r["ok"] for r in data["reports"]] == [True, False]
    assert data["reports"][1]["facts"]["logs"]["permission_problems"] == 11
    assert parse_json(text) == items


def test_lines_from_chunks_split_anywhere() -> None:
    text = "\n".join(lines("troubled.log")) + "\n"
    raw = text.encode()
    chunks = [raw[i : i + 37] for i in range(0, len(raw), 37)]
    assert list(lines_from_chunks(chunks)) == lines("troubled.log")
    assert summarise(lines_from_chunks([raw])) == summarise(lines("troubled.log"))


def test_100k_synthetic_lines_are_summarised_fast() -> None:
    log = list(synthetic_log(100_000))
    assert len(log) == 100_000 and log[0].startswith("2026-11-25T08:00:00")
    started = time.perf_counter()
    summary = summarise(log)
    elapsed = time.perf_counter() - started
    assert summary.lines == 100_000 and summary.unsigned == 0
    assert summary.signed - summary.accepted in (0, 1)  # the last message may be cut after signing
    assert summary.relay_denied > 0 and summary.tls_inbound > 0
    assert summary.by_status["sent"] > 10 * summary.by_status["bounced"] > 0
    assert set(summary.by_transport) == {"smtp", "ms-throttle", "yahoo-throttle", "comcast-throttle"}
    assert figures(summarise(synthetic_log(100_000, timestamps=False))) == figures(summary)
    assert elapsed < 2.0, f"{elapsed:.2f}s for 100,000 lines"
    flags = raised(BurnInFacts("synthetic", "24h", summary, QueueSummary()))
    assert flags == {"No relay access denied", "No TLS handshake failures"}
