"""Read and verify DKIM signatures with dkimpy, against a key we hold (no DNS)."""

from __future__ import annotations

import email
import email.policy
import re

from .material import DKIM_DOMAIN, DKIM_SELECTOR

#: OpenDKIM's log line (after "<queue id>: ") for a message it signed with the image's key.
SIGNED_LOG_LINE = rf"DKIM-Signature field added \(s={re.escape(DKIM_SELECTOR)}, d={re.escape(DKIM_DOMAIN)}\)"


def dkim_tags(raw: bytes) -> dict[str, str]:
    """The tags of the message's first DKIM-Signature header ({} when unsigned)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    header = msg.get("DKIM-Signature")
    if header is None:
        return {}
    text = re.sub(r"\s+", "", str(header))
    return dict(part.split("=", 1) for part in text.split(";") if "=" in part)


def verify(raw: bytes, txt_value: str, domain: str = DKIM_DOMAIN, selector: str = DKIM_SELECTOR) -> bool:
    """True when dkimpy verifies the signature with the TXT record value `txt_value`
    (v=DKIM1; k=rsa; p=...) published as selector._domainkey.domain."""
    import dkim  # dkimpy: a test/bench dependency

    expected = f"{selector}._domainkey.{domain}."

    def dnsfunc(name: bytes | str, timeout: int = 5) -> bytes:
        name_s = name.decode() if isinstance(name, bytes) else name
        return txt_value.encode() if name_s.rstrip(".") + "." == expected else b""

    return bool(dkim.verify(raw, dnsfunc=dnsfunc))
