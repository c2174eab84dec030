"""Submission on 587: the greeting, STARTTLS verified against the mounted chain, no open relay."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable

import pytest
from docker.models.networks import Network

from smtp_out import mail
from smtp_out.engine.containers import exec_text
from smtp_out.material import Material

from .conftest import Started
from .support import HOLD

pytestmark = pytest.mark.docker


def test_greets_with_220_on_587(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out()
    assert mail.greet(s.host).banner.startswith("220 feedsubscription.com ESMTP")


def test_starttls_verifies_against_the_mounted_chain(
    smtp_out: Callable[..., Started], material: Material
) -> None:
    s = smtp_out()
    # verify the name in the certificate (feedsubscription.com), not the address dialled
    with mail.Client(s.host, 587, timeout=10, tls_hostname="feedsubscription.com") as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        code, _ = smtp.starttls(context=mail.tls_context(material.ca))
        assert code == 220
        sock = smtp.sock
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")


def test_client_outside_mynetworks_gets_a_permanent_relay_rejection(
    smtp_out: Callable[..., Started], network: Callable[..., Network], material: Material
) -> None:
    s = smtp_out(net=network("100.64.7.0/24"), env=HOLD)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        mail.submit(s.host, mail.message("reader@example.com"), ca=material.ca)
    code, reply = next(iter(err.value.recipients.values()))
    assert code == 554 and b"Relay access denied" in reply
    _, out = exec_text(s.container, "postqueue -j")
    assert out.strip() == ""
