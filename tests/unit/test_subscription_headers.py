"""Subscription headers in the burn-in report: the submission cleanup logs List-Unsubscribe and
List-Unsubscribe-Post (header_checks INFO); the summariser counts accepted messages carrying
one-click unsubscribe (RFC 8058), leaves the canary out, and the report shows the share."""

from __future__ import annotations

from smtp_out.ops import canary
from smtp_out.ops.report import logparse
from smtp_out.ops.report.logparse import summarise
from smtp_out.ops.report.verdict import build_facts, judge, render_text

HOST = "Dec  1 08:00:00 feedsubscription"
CANARY = "smtp-out-canary@feedsubscription.com"
CLIENT = "unknown[10.5.5.100]; from=<{sender}> to=<reader@example.org> proto=ESMTP helo=<app.test>"


def message(qid: str, sender: str = "news@feedsubscription.com", *, unsubscribe: bool, one_click: bool,
            cleanup: str = "postfix/submission/cleanup", post: str = logparse.ONE_CLICK,
            ) -> list[str]:  # fmt: skip
    """The lines one submitted message leaves, as the image logs them."""
    client = CLIENT.format(sender=sender)
    lines = [f"{HOST} postfix/submission/smtpd[10]: {qid}: client=unknown[10.5.5.100]"]
    if unsubscribe:
        value = "<https://feedsubscription.com/u/abc>, <mailto:u+abc@feedsubscription.com>"
        lines.append(f"{HOST} {cleanup}[11]: {qid}: info: header List-Unsubscribe: {value} from {client}")
    if one_click:
        lines.append(f"{HOST} {cleanup}[11]: {qid}: info: header List-Unsubscribe-Post: {post} from {client}")
    lines += [
        f"{HOST} {cleanup}[11]: {qid}: message-id=<{qid}@feedsubscription.com>",
        f"{HOST} opendkim[9]: {qid}: DKIM-Signature field added (s=mail, d=feedsubscription.com)",
        f"{HOST} postfix/qmgr[12]: {qid}: from=<{sender}>, size=900, nrcpt=1 (queue active)",
        f"{HOST} postfix/smtp[13]: {qid}: to=<reader@example.org>, relay=mx[10.5.5.25]:25, delay=0.1, "
        "delays=0/0/0/0, dsn=2.0.0, status=sent (250 OK)",
        f"{HOST} postfix/qmgr[12]: {qid}: removed",
    ]
    return lines


def test_one_click_messages_are_counted_and_the_canary_left_out() -> None:
    log = [
        *message("A00001", unsubscribe=True, one_click=True),
        *message("A00002", unsubscribe=True, one_click=True, cleanup="postfix/cleanup"),
        *message("A00003", unsubscribe=True, one_click=True, cleanup="postfix/submission-cleanup"),
        *message("A00004", unsubscribe=True, one_click=False),  # no Post header
        *message("A00005", unsubscribe=False, one_click=False),  # a confirmation mail: needs none
        *message("A00006", unsubscribe=True, one_click=True, post="List-Unsubscribe=Maybe"),
        *message("A00007", "smtp-out-canary@feedsubscription.com", unsubscribe=False, one_click=False),
    ]
    s = summarise(log)
    assert (s.accepted, s.signed, s.unsigned) == (7, 7, 0)
    assert (s.canary, s.list_unsubscribe, s.one_click) == (1, 5, 3)


def test_header_lines_of_a_message_submitted_before_the_window_are_not_counted() -> None:
    log = message("B00001", unsubscribe=True, one_click=True)[1:]  # its client= line is before the window
    s = summarise(log)
    assert (s.accepted, s.one_click) == (0, 0)


def test_the_report_shows_the_share_as_a_figure_not_a_red_flag() -> None:
    log = [*message("C00001", unsubscribe=True, one_click=True),
           *message("C00002", unsubscribe=False, one_click=False),
           *message("C00003", CANARY, unsubscribe=False, one_click=False)]  # fmt: skip
    facts = build_facts("smtp-out", "24h", log, "", 0.0)
    report = judge(facts)
    assert report.ok, report.text()
    text = render_text(facts, report)
    assert "one-click unsubscribe (RFC 8058)  1 of 2 accepted (50%), canary left out: 1" in text
    assert all("unsubscribe" not in r.name.lower() for r in report.results)


def test_no_accepted_mail_shows_no_share() -> None:
    facts = build_facts("smtp-out", "24h", [], "", 0.0)
    assert "one-click unsubscribe (RFC 8058)  0 of 0 accepted (-)" in render_text(facts, judge(facts))


def test_the_canary_sender_is_the_canarys() -> None:
    assert f"from=<{canary.SENDER_LOCAL_PART}@" == logparse.CANARY_SENDER
