"""The spec's Phase 3 integration tests and Testing Checklist, on a hermetic production copy.

Every message goes app (10.5.5.100) -> smtp-out:587 (STARTTLS) -> resolver MX -> sink MX.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import trustme

from smtp_out.dkim import SIGNED_LOG_LINE, dkim_tags, verify
from smtp_out.engine.containers import exec_text, wait_for_health, wait_for_log
from smtp_out.ops.launch import wait_for_banner
from smtp_out.testing.network import SINK_IP, SINK_IPV6, SMTP_OUT_IP, TestNet

pytestmark = pytest.mark.docker


def delivery_lines(log: str, queue_id: str) -> list[str]:
    return [ln for ln in log.splitlines() if f"{queue_id}: to=<" in ln]


def postmaster_notices(net: TestNet) -> list[bytes]:
    """Transcripts that notify_classes=bounce sends postmaster (aliased to the operator)."""
    return [m.raw for m in net.received() if m.header_seq is None and m.rcpt_tos == ("operator@example.org",)]


# 1. STARTTLS ------------------------------------------------------------------------------


def test_starttls_verified_against_the_test_ca_tls12_or_newer(net: TestNet) -> None:
    r = net.submit("reader@example.com")
    assert r.codes == [250]
    assert r.tls and all(v in ("TLSv1.2", "TLSv1.3") for v in r.tls)
    # the verification is real: a client trusting another CA refuses the handshake
    other = net.material.root / "other-ca.pem"
    other.write_bytes(trustme.CA().cert_pem.bytes())
    bad = net.submit("reader@example.com", extra=["--ca", "/material/other-ca.pem"])
    assert bad.codes == [0] and "CERTIFICATE_VERIFY_FAILED" in bad.results[0]["reply"]


# 2. DKIM ----------------------------------------------------------------------------------


def test_app_mail_is_delivered_with_a_dkim_signature_dkimpy_verifies(net: TestNet) -> None:
    r = net.submit("reader@example.com")
    assert r.codes == [250]
    (msg,) = net.wait_for_received(1)
    tags = dkim_tags(msg.raw)
    assert (tags["d"], tags["s"], tags["c"], tags["a"]) == (
        "feedsubscription.com",
        "mail",
        "relaxed/simple",
        "rsa-sha256",
    )
    assert verify(msg.raw, net.material.dkim.txt_value)
    assert msg.peer == SMTP_OUT_IP and msg.rcpt_tos == ("reader@example.com",)


# 3. Transport policies --------------------------------------------------------------------


def test_each_throttled_domain_goes_through_its_transport(net: TestNet) -> None:
    expected = {
        "a@outlook.com": "postfix/ms-throttle/smtp",
        "b@yahoo.com": "postfix/yahoo-throttle/smtp",
        "c@comcast.net": "postfix/comcast-throttle/smtp",
        "d@example.com": "postfix/smtp",
    }
    r = net.submit(list(expected), count=len(expected))
    assert r.codes == [250] * 4
    net.wait_for_received(4)
    lines = net.wait_for_delivery([res["queue_id"] for res in r.results])
    log = net.relay_logs()
    for result in r.results:
        assert delivery_lines(log, result["queue_id"]) == [lines[result["queue_id"]]], "one attempt each"
        line = lines[result["queue_id"]]
        assert f" {expected[result['rcpt']]}[" in line, line
        assert "status=sent" in line


def test_messages_to_one_microsoft_domain_arrive_one_at_a_time_5s_apart(net: TestNet) -> None:
    r = net.submit("reader@hotmail.com", count=3, concurrency=3)
    assert r.codes == [250] * 3
    msgs = net.wait_for_received(3, timeout=40)
    gaps = [b.arrived - a.arrived for a, b in itertools.pairwise(msgs)]
    assert all(gap >= 4.5 for gap in gaps), gaps


# 4. Virtual aliases -----------------------------------------------------------------------


def test_virtual_alias_is_rewritten_and_delivered(net: TestNet) -> None:
    r = net.submit(["postmaster@feedsubscription.com", "nobody@feedsubscription.com"], count=2)
    assert r.codes[0] == 250
    assert r.codes[1] == 550 and "User unknown" in r.results[1]["reply"]
    received = net.wait_for_received(2)  # the alias's message, and postmaster's transcript of the 550
    (msg,) = [m for m in received if m.header_seq == 0]
    assert msg.rcpt_tos == ("operator@example.org",)
    wait_for_log(net.relay, r"orig_to=<postmaster@feedsubscription.com>.*status=sent")
    (notice,) = postmaster_notices(net)
    assert b"nobody@feedsubscription.com" in notice


# 5. No open relay -------------------------------------------------------------------------


def test_outsider_gets_a_5xx_relay_rejection_and_nothing_reaches_the_sink(net: TestNet) -> None:
    r = net.submit("reader@example.com", count=2, outsider=True)
    assert r.codes == [554, 554]
    assert all("Relay access denied" in res["reply"] for res in r.results)
    time.sleep(2)
    # only postmaster's transcripts of the rejections (notify_classes=bounce) reach the sink
    assert all(m.rcpt_tos == ("operator@example.org",) and m.header_seq is None for m in net.received())
    assert not any(b"X-Test-Seq" in m.raw for m in net.received())
    assert all(b"Relay access denied" in n for n in postmaster_notices(net))


# 6. Queue persistence ---------------------------------------------------------------------


def test_deferred_mail_survives_restart_and_sigkill_and_is_all_delivered(net: TestNet) -> None:
    net.sink_down()
    r = net.submit(["a@example.com", "b@example.net", "c@outlook.com"], count=6, concurrency=2)
    assert r.codes == [250] * 6
    wait_for_log(net.relay, r"status=deferred", 6)
    assert len(net.queue_ids()) == 6

    net.relay.restart(timeout=10)
    wait_for_banner(net.relay, SMTP_OUT_IP)
    assert len(net.queue_ids()) == 6
    net.relay.kill()  # SIGKILL: no clean shutdown
    net.relay.wait(timeout=10)
    assert net.spool is not None
    assert (net.spool / "opendkim" / "opendkim.sock").is_socket(), "SIGKILL leaves OpenDKIM's socket behind"
    net.relay.start()
    wait_for_banner(net.relay, SMTP_OUT_IP)
    assert len(net.queue_ids()) == 6

    net.sink_up()
    msgs = net.wait_for_received(6, timeout=90)
    wait_for_log(net.relay, r": [0-9A-F]+: removed$", 6)  # every queue file gone: no later duplicate
    seqs = sorted(m.header_seq for m in net.received() if m.header_seq is not None)
    assert seqs == list(range(6)), "lost or duplicated messages"
    assert len(msgs) == 6
    assert net.queue_ids() == []


# 7. No unsigned mail ----------------------------------------------------------------------


def test_with_opendkim_dead_nothing_leaves_unsigned_and_the_container_is_unhealthy(net: TestNet) -> None:
    wait_for_health(net.relay, "healthy", timeout=20)
    exec_text(net.relay, "pkill -x opendkim")
    r = net.submit("reader@example.com")
    code = r.codes[0]
    assert 400 <= code < 500 or (code == 250 and net.queue_ids()), r.results
    wait_for_health(net.relay, "unhealthy", timeout=20)
    time.sleep(2)
    assert net.received() == []


# 8. Logging -------------------------------------------------------------------------------


def test_connection_relay_delivery_and_opendkim_lines_on_stdout(net: TestNet) -> None:
    r = net.submit("reader@example.com", count=2)
    net.wait_for_received(2)
    qids = [res["queue_id"] for res in r.results]
    lines = net.wait_for_delivery(qids)
    signed = wait_for_log(net.relay, rf"opendkim\[\d+\]: ({'|'.join(qids)}): {SIGNED_LOG_LINE}", count=2)
    log = net.relay_logs()
    for qid in qids:
        assert any(f": {qid}: " in ln for ln in signed)
        line = lines[qid]
        assert f"relay=mx.sink.test[{SINK_IP}]:25" in line and "status=sent" in line
        assert f"{qid}: client=unknown[10.5.5.100]" in log
    assert "postfix/submission/smtpd" in log and "connect from unknown[10.5.5.100]" in log


# 9. IPv4 only -----------------------------------------------------------------------------


def test_delivery_uses_ipv4_although_the_resolver_answers_aaaa(net: TestNet) -> None:
    _, aaaa = exec_text(net.relay, "dig +short AAAA mx.sink.test")
    assert aaaa.strip() == SINK_IPV6
    r = net.submit("reader@example.com")
    (msg,) = net.wait_for_received(1)
    line = net.wait_for_delivery([r.results[0]["queue_id"]])[r.results[0]["queue_id"]]
    log = net.relay_logs()
    assert f"[{SINK_IP}]:25" in line and SINK_IPV6 not in log
    assert "Cannot assign requested address" not in log
    assert msg.peer == SMTP_OUT_IP


# 10. Migration from the Alpine container --------------------------------------------------


ALPINE_UID = 990  # the old image's postfix/postdrop ids differ from Debian's


def _age_like_alpine(spool: Path) -> None:
    """Give a queue directory what the old Alpine container left behind: foreign owners on every
    file, stale time zone data and chroot files, owned by the volume's user."""
    subprocess.run(["chown", "-R", f"{ALPINE_UID}:{ALPINE_UID}", str(spool)], check=True)
    zoneinfo = spool / "usr" / "share" / "zoneinfo"
    shutil.rmtree(zoneinfo, ignore_errors=True)
    (zoneinfo / "Etc").mkdir(parents=True)
    (zoneinfo / "Etc" / "UTC").write_bytes(b"TZif2 stale alpine data")
    (zoneinfo / "UTC").write_bytes(b"TZif2 stale alpine data")
    for name in ("localtime", "resolv.conf", "hosts", "services"):
        (spool / "etc" / name).write_bytes(b"# stale copy from the alpine image\n")
    subprocess.run(
        ["chown", "-R", f"{ALPINE_UID}:{ALPINE_UID}", str(spool / "etc"), str(zoneinfo)], check=True
    )


def test_a_queue_left_by_the_alpine_image_boots_clean_and_its_mail_is_delivered(
    net: TestNet, tmp_path: Path
) -> None:
    old = tmp_path / "alpine-spool"
    net.sink_down()
    net.start_smtp_out(spool=old)
    r = net.submit("reader@example.com")
    assert r.codes == [250]
    wait_for_log(net.relay, r"status=deferred")
    net.relay.stop(timeout=10)
    net.remove_smtp_out()
    _age_like_alpine(old)
    assert (old / "deferred").stat().st_uid == ALPINE_UID

    net.sink_up()
    net.start_smtp_out(spool=old)
    (msg,) = net.wait_for_received(1, timeout=60)
    assert msg.rcpt_tos == ("reader@example.com",)
    wait_for_log(net.relay, r"status=sent")
    bad = [ln for ln in net.relay_logs().splitlines() if re.search(r"warning|error|fatal|panic", ln, re.I)]
    assert bad == []
    _, owners = exec_text(net.relay, "stat -c '%U' /var/spool/postfix/deferred /var/spool/postfix/etc/hosts")
    assert owners.split() == ["postfix", "root"]
