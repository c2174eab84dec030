"""The canary's verdicts, judged on hand-made facts (no Docker): a message signed with the key DNS
publishes passes; each way it can go wrong fails exactly the checks that see it."""

from __future__ import annotations

import base64
import dataclasses

import dkim
import pytest

from smtp_out.checks import run_checks
from smtp_out.dkim import DkimKey
from smtp_out.mail import message
from smtp_out.ops.canary import CanaryFacts, checks

VERIFIES = "Signature verifies against the published key (dkimpy)"
KEY = DkimKey.generate(1024)
OTHER = DkimKey.generate(1024)


def signed(key: DkimKey) -> bytes:
    raw = message("postmaster@feedsubscription.com", sender="smtp-out-canary@feedsubscription.com").as_bytes()
    return (
        bytes(
            dkim.sign(
                raw, b"mail", b"feedsubscription.com", key.private_pem, canonicalize=(b"relaxed", b"simple")
            )
        )
        + raw
    )


def healthy(disposal: str = "deleted") -> CanaryFacts:
    return CanaryFacts(
        container="smtp-out-new", domain="feedsubscription.com", selector="mail",
        submitted="250 2.0.0 Ok: queued as 4B1C2D3E", queue_id="4B1C2D3E", held="hold", raw=signed(KEY),
        published=KEY.txt_value, published_error="", mounted_public=base64.b64encode(KEY.public_der).decode(),
        disposal=disposal,
    )  # fmt: skip


def failed(facts: CanaryFacts, to: str | None = None) -> set[str]:
    return {r.name for r in run_checks("t", checks(to), facts).failed}


def test_a_message_signed_with_the_published_key_passes_and_is_deleted_or_released() -> None:
    assert failed(healthy()) == set()
    assert failed(healthy("released to reader@example.com"), "reader@example.com") == set()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"published": OTHER.txt_value},
            {"Published key matches the mounted private key", VERIFIES},
        ),
        ({"mounted_public": "cannot read /etc/opendkim/keys/feedsubscription.com.private"},
         {"Published key matches the mounted private key"}),
        ({"raw": signed(OTHER)}, {VERIFIES}),
        ({"published": "", "published_error": "DNS lookup failed (NXDOMAIN)"},
         {"Key published in DNS", "Published key matches the mounted private key",
          VERIFIES}),
        ({"held": "gone from the queue", "raw": b""},
         {"Held on arrival", "Signed with the domain and selector",
          VERIFIES}),
        ({"submitted": "451 4.7.1 Service unavailable - try again later", "queue_id": None,
          "held": "not queued", "raw": b"", "disposal": "nothing to dispose of: not queued"},
         {"Accepted over STARTTLS", "Held on arrival", "Signed with the domain and selector",
          VERIFIES, "Canary deleted"}),
    ],
)  # fmt: skip
def test_each_fault_fails_exactly_the_checks_that_see_it(
    change: dict[str, object], expected: set[str]
) -> None:
    assert failed(dataclasses.replace(healthy(), **change)) == expected  # type: ignore[arg-type]
