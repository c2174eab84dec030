"""DKIM signing: mail from every mynetworks range is signed; read-only keys work."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from docker.models.networks import Network

from smtp_out import mail
from smtp_out.dkim import SIGNED_LOG_LINE, dkim_tags, verify
from smtp_out.engine.containers import exec_text, wait_for_log
from smtp_out.material import Material

from .conftest import Started
from .support import HOLD, queued

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("subnet", ["172.30.40.0/24", "192.168.240.0/24", "10.5.5.0/24"])
def test_mail_from_every_mynetworks_range_is_queued_signed(
    smtp_out: Callable[..., Started], network: Callable[..., Network], material: Material, subnet: str
) -> None:
    """The host submits as the network's gateway: 172.30.40.1 and 192.168.240.1 are inside
    mynetworks but outside the shipped TrustedHosts (10.5.5.0/24); all must be signed."""
    s = smtp_out(net=network(subnet), env=HOLD)
    sub = mail.submit(s.host, mail.message("reader@example.com"), ca=material.ca)
    assert sub.code == 250 and sub.queue_id
    raw = queued(s, sub.queue_id)
    tags = dkim_tags(raw)
    assert tags.get("d") == "feedsubscription.com"
    assert tags.get("s") == "mail"
    assert tags.get("c") == "relaxed/simple"
    assert tags.get("a") == "rsa-sha256"
    assert verify(raw, material.dkim.txt_value), "dkimpy rejects the signature"
    wait_for_log(s.container, rf"{sub.queue_id}: {SIGNED_LOG_LINE}")


def test_read_only_key_mount_gets_a_private_copy_for_opendkim(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out(keys_read_only=True)
    _, out = exec_text(
        s.container,
        "touch /etc/opendkim/keys/x 2>&1; stat -c '%U %a' /run/opendkim/keys/feedsubscription.com.private",
    )
    assert "Read-only file system" in out
    assert out.strip().endswith("opendkim 600")
