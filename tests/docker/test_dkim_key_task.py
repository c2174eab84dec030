"""invoke dkim-key: a key in the flat layout that a container then signs with."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from smtp_out import mail
from smtp_out.dkim import DkimKey, dkim_tags, verify
from smtp_out.engine.containers import exec_text
from smtp_out.material import Material

from ..helpers import invoke
from .conftest import Started

pytestmark = pytest.mark.docker


def test_dkim_key_then_a_container_signs_with_it(
    smtp_out: Callable[..., Started], material: Material, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    made = invoke("dkim-key", "--domain", "feedsubscription.com", "--bits", "2048", "--out", str(keys_dir))
    assert made.returncode == 0, made.stderr
    private = keys_dir / "feedsubscription.com.private"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    txt = (keys_dir / "feedsubscription.com.txt").read_text()
    assert txt.startswith("mail._domainkey.feedsubscription.com. IN TXT")
    published = "".join(txt.split('"')[1::2])
    assert published in made.stdout.replace('" "', "")

    again = invoke("dkim-key", "--domain", "feedsubscription.com", "--out", str(keys_dir))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    assert private.read_bytes() != b""

    generated = Material(
        tmp_path, DkimKey(private.read_bytes(), b""), material.tls
    )  # keys_dir: tmp_path/keys
    generated.cert.parent.mkdir()
    generated.cert.write_bytes(material.tls.chain_pem)
    generated.cert_key.write_bytes(material.tls.key_pem)
    s = smtp_out(material=generated, env={"POSTFIX_defer_transports": "smtp"})
    sub = mail.submit(s.host, mail.message("reader@example.com"), ca=material.ca)
    rc, raw = exec_text(s.container, f"postcat -hbq {sub.queue_id}")
    assert rc == 0
    assert dkim_tags(raw.encode())["s"] == "mail"
    assert verify(raw.encode(), published)
