"""The override policy end to end (entrypoint.d/policy.sh; the verdicts: tests/docker/test_overrides.py).

- A refused override: the relay does not start (exit 1, one ERROR line naming the variable), so
  nothing reaches the sink, unsigned or otherwise, and neither the app nor an outsider can relay.
- An override allowed on purpose (opt-in, one WARNING line): the app's mail still arrives signed,
  and an outsider still cannot relay.
- A hyphenated transport parameter from the environment is applied: measured at the sink.
- One-click unsubscribe headers are logged with Postfix's INFO action; the message is delivered signed.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtp_out.dkim import dkim_tags, verify
from smtp_out.engine.containers import logs, wait_for_exit, wait_for_log
from smtp_out.testing.network import TestNet

pytestmark = pytest.mark.docker


@pytest.fixture
def bare(suite_net: TestNet, request: pytest.FixtureRequest) -> Iterator[TestNet]:
    """The suite's network with an empty sink and no smtp-out: each test starts its own."""
    suite_net.sink.reload()
    if suite_net.sink.status != "running":
        suite_net.sink_up()
    suite_net.clear_sink()
    suite_net.remove_smtp_out()
    yield suite_net
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print("\n" + suite_net.all_logs())
    suite_net.remove_smtp_out()


def signed(net: TestNet, raw: bytes) -> bool:
    return dkim_tags(raw).get("d") == "feedsubscription.com" and verify(raw, net.material.dkim.txt_value)


#: The overrides issue 16 found weakening a guarantee, and the rest of the policy's kinds.
REFUSED = {
    "POSTFIX_receive_override_options": "no_milters",
    "POSTFIX_smtpd_milter_maps": "static:DISABLE",
    "POSTFIX_mynetworks": "0.0.0.0/0",
    "POSTFIX_smtpd_milters": "",
    "POSTFIX_milter_default_action": "accept",
    "POSTFIX_content_filter": "smtp:[10.5.5.25]:25",
    "POSTFIX_smtpd_authorized_xclient_hosts": "0.0.0.0/0",
    "POSTFIX_smtpd_relay_restrictions": "permit",
    "POSTFIX_smtpd_tls_mandatory_protocols": ">=TLSv1",
}


@pytest.mark.parametrize("variable", list(REFUSED))
def test_a_refused_override_lets_nothing_unsigned_out_and_nobody_relay(
    bare: TestNet, tmp_path: Path, variable: str
) -> None:
    spool = tmp_path / "spool"
    relay = bare.start_smtp_out(spool=spool, env={variable: REFUSED[variable]}, wait=False)
    assert wait_for_exit(relay, timeout=20) == 1
    errors = [ln for ln in logs(relay).splitlines() if ln.startswith("[smtp-out] ERROR:")]
    assert len(errors) == 1 and errors[0].startswith(f"[smtp-out] ERROR: {variable}: "), errors
    app = bare.submit("reader@example.com", extra=["--from-header", "ceo@bank.example"])
    outsider = bare.submit("reader@example.com", outsider=True)
    assert [r["code"] for r in app.results + outsider.results] == [0, 0]  # no relay answers at all
    time.sleep(1)
    assert bare.received() == []
    assert list(spool.iterdir()) == []


WARNED = {
    "wide-mynetworks": (
        {
            "POSTFIX_mynetworks": "127.0.0.0/8, 10.5.5.0/24, 100.64.1.0/24",
            "SMTP_OUT_ALLOW_WIDE_MYNETWORKS": "yes",
        },
        "[smtp-out] WARNING: mynetworks (from POSTFIX_mynetworks) includes 100.64.1.0/24,",
    ),
    "tls-1.0": (
        {"POSTFIX_smtpd_tls_mandatory_protocols": ">=TLSv1", "SMTP_OUT_ALLOW_WEAK_TLS": "yes"},
        "[smtp-out] WARNING: smtpd_tls_mandatory_protocols='>=TLSv1' "
        "(from POSTFIX_smtpd_tls_mandatory_protocols)",
    ),
}


@pytest.mark.parametrize("case", sorted(WARNED))
def test_an_override_allowed_on_purpose_still_signs_and_relays_for_nobody_else(
    bare: TestNet, tmp_path: Path, case: str
) -> None:
    env, warning = WARNED[case]
    relay = bare.start_smtp_out(spool=tmp_path / "spool", env=env)
    warnings = [ln for ln in logs(relay).splitlines() if ln.startswith("[smtp-out] WARNING:")]
    assert len(warnings) == 1 and warnings[0].startswith(warning), warnings
    assert bare.submit("reader@example.com").codes == [250]
    (msg,) = bare.wait_for_received(1)
    assert signed(bare, msg.raw), msg.raw[:300]
    outsider = bare.submit("reader@example.com", outsider=True)  # 100.64.0.100: outside 100.64.1.0/24 too
    assert outsider.codes == [554] and "Relay access denied" in outsider.results[0]["reply"]
    time.sleep(1)
    assert [m.rcpt_tos for m in bare.received() if b"X-Test-Seq" in m.raw] == [("reader@example.com",)]


def test_a_hyphenated_transport_parameter_is_applied_and_measured(bare: TestNet, tmp_path: Path) -> None:
    """POSTFIX_ms-throttle_destination_rate_delay=2s: bash never sees the name; the entrypoint does.
    Three messages to one Microsoft domain arrive one at a time ~2 s apart (the image's 5 s otherwise)."""
    bare.start_smtp_out(spool=tmp_path / "spool", env={"POSTFIX_ms-throttle_destination_rate_delay": "2s"})
    r = bare.submit("reader@hotmail.com", count=3, concurrency=3)
    assert r.codes == [250] * 3
    msgs = bare.wait_for_received(3, timeout=30)
    gaps = [b.arrived - a.arrived for a, b in itertools.pairwise(msgs)]
    assert all(1.5 <= gap <= 3.5 for gap in gaps), gaps
    print(f"\ngaps between deliveries to hotmail.com: {[round(g, 2) for g in gaps]} s")
    assert all(signed(bare, m.raw) for m in msgs)
    lines = bare.wait_for_delivery([str(res["queue_id"]) for res in r.results])
    assert all("postfix/ms-throttle/smtp[" in line for line in lines.values()), lines


UNSUBSCRIBE = "<mailto:unsubscribe@feedsubscription.com?subject=u>, <https://feedsubscription.com/u/abc>"


def test_one_click_unsubscribe_headers_are_logged_and_the_message_leaves_signed(
    bare: TestNet, tmp_path: Path
) -> None:
    relay = bare.start_smtp_out(spool=tmp_path / "spool")
    r = bare.submit(
        "reader@example.com",
        extra=[
            "--header", f"List-Unsubscribe: {UNSUBSCRIBE}",
            "--header", "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        ],
    )  # fmt: skip
    assert r.codes == [250]
    qid = str(r.results[0]["queue_id"])
    (msg,) = bare.wait_for_received(1)
    assert signed(bare, msg.raw)
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in msg.raw
    (unsubscribe,) = wait_for_log(relay, rf"{qid}: info: header List-Unsubscribe: ")
    (post,) = wait_for_log(relay, rf"{qid}: info: header List-Unsubscribe-Post: ")
    # The value as Postfix logs it: the header as it arrived, a folding line break shown as "?".
    folded = re.search(rb"^List-Unsubscribe: (.*?)\r?\n(?=\S)", msg.raw, re.M | re.S)
    assert folded is not None
    value = folded.group(1).decode().replace("\r\n", "\n").replace("\n", "?")
    assert value.replace("? ", " ") == UNSUBSCRIBE
    tail = " from unknown[10.5.5.100]; from=<newsletter@feedsubscription.com> to=<reader@example.com> "
    tail += "proto=ESMTP helo=<app.test>"
    assert re.search(r"postfix/\S*cleanup\[\d+\]: ", unsubscribe), unsubscribe
    assert unsubscribe.endswith(f" {qid}: info: header List-Unsubscribe: {value}{tail}"), unsubscribe
    assert post.endswith(f" {qid}: info: header List-Unsubscribe-Post: List-Unsubscribe=One-Click{tail}"), (
        post
    )
    print(f"\n{unsubscribe}\n{post}")
