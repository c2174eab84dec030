"""Sign or refuse, and never in clear text: what the relay promises the app, end to end.

Every message accepted on 587 leaves with a valid d=feedsubscription.com signature, or is refused
at submission with a permanent 5xx that says why; submission without STARTTLS, or with TLS
below 1.2, is refused; Postfix's own mail (bounces, notices to postmaster) still leaves signed.
"""

from __future__ import annotations

import time

import pytest

from smtp_out.dkim import dkim_tags, verify
from smtp_out.engine.containers import exec_text, wait_for_log
from smtp_out.testing.network import SMTP_OUT_IP, TestNet

pytestmark = pytest.mark.docker

FROM_POLICY = "From: must be an address at feedsubscription.com or a sub-domain of it"


def nothing_unsigned_reached_the_sink(net: TestNet) -> None:
    for m in net.received():
        assert dkim_tags(m.raw).get("d") == "feedsubscription.com", m.raw[:300]
        assert verify(m.raw, net.material.dkim.txt_value), m.raw[:300]


@pytest.mark.parametrize(
    ("header_from", "accepted"),
    [
        ("newsletter@feedsubscription.com", True),
        ("Blog Name <x@news.feedsubscription.com>", True),  # a sub-domain: signed d=feedsubscription.com
        ("blog@gmail.com", False),  # foreign
        ('"x@feedsubscription.com" <blog@gmail.com>', False),  # foreign, disguised
        ("", False),  # no From: at all
    ],
)
def test_every_message_is_signed_or_refused_with_a_permanent_5xx(
    net: TestNet, header_from: str, accepted: bool
) -> None:
    r = net.submit(
        "reader@example.com", extra=["--sender", "app@feedsubscription.com", "--from-header", header_from]
    )
    (result,) = r.results
    if accepted:
        assert result["code"] == 250, result
        (msg,) = net.wait_for_received(1)
        assert dkim_tags(msg.raw)["d"] == "feedsubscription.com"
        assert verify(msg.raw, net.material.dkim.txt_value)
    else:
        assert 500 <= result["code"] < 600, result  # never 4xx: the app would retry forever
        assert "5.7.1" in result["reply"] and "From" in result["reply"], result
        if header_from:
            assert FROM_POLICY in result["reply"]
        time.sleep(1.5)
        assert net.received() == [], "refused means not delivered"
        assert net.queue_ids() == [], "refused means not queued either"
    nothing_unsigned_reached_the_sink(net)


def test_submission_without_starttls_is_refused_with_530_and_nothing_is_delivered(net: TestNet) -> None:
    r = net.submit("reader@example.com", extra=["--no-tls"])
    assert [res["code"] for res in r.results] == [530]
    assert "Must issue a STARTTLS command first" in r.results[0]["reply"]
    time.sleep(1)
    assert net.received() == [] and net.queue_ids() == []


TLS11 = f"""
import smtplib, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
s = smtplib.SMTP("{SMTP_OUT_IP}", 587, timeout=10)
s.ehlo()
try:
    s.starttls(context=ctx)
    print("accepted", s.sock.version())
except (ssl.SSLError, OSError, smtplib.SMTPException) as exc:
    print("refused", type(exc).__name__, exc)
"""


def test_a_tls_1_1_client_is_refused(net: TestNet) -> None:
    rc, out = exec_text(net.app, ["python3", "-W", "ignore::DeprecationWarning", "-c", TLS11])
    assert rc == 0, out
    assert out.startswith("refused SSLError"), out
    assert "protocol version" in out, out


def test_bounces_and_notices_to_postmaster_leave_signed(net: TestNet) -> None:
    """The sink refuses reject@...: the relay bounces to the (deliverable) envelope sender, and
    notify_classes=bounce sends postmaster a copy; both are Postfix's own mail, both signed."""
    r = net.submit(
        "reject@example.org",
        extra=["--sender", "ops@example.com", "--from-header", "newsletter@feedsubscription.com"],
    )
    assert r.codes == [250]
    msgs = net.wait_for_received(2, timeout=60)
    wait_for_log(net.relay, r"status=bounced")
    bounce = next(m for m in msgs if m.rcpt_tos == ("ops@example.com",))
    notice = next(m for m in msgs if m.rcpt_tos == ("operator@example.org",))
    for m in (bounce, notice):
        assert b"MAILER-DAEMON@feedsubscription.com" in m.raw
        assert verify(m.raw, net.material.dkim.txt_value), m.raw[:400]
