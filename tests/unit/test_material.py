from __future__ import annotations

import stat
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest

from smtp_out.dkim import DkimKey, KeyExists, dkim_tags, verify
from smtp_out.material import Material


@pytest.fixture(scope="module")
def key() -> DkimKey:
    return DkimKey.generate(1024)


def test_flat_layout_private_key_is_600_and_never_overwritten(tmp_path: Path, key: DkimKey) -> None:
    private = key.write_flat(tmp_path, "example.org").private
    assert private == tmp_path / "example.org.private"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    txt = (tmp_path / "example.org.txt").read_text()
    assert txt.startswith("mail._domainkey.example.org. IN TXT (")
    assert "".join(part for part in txt.split('"')[1::2]) == key.txt_value
    with pytest.raises(KeyExists):
        key.write_flat(tmp_path, "example.org")


def test_signatures_made_with_the_key_verify_and_others_do_not(key: DkimKey) -> None:
    msg = EmailMessage()
    msg["From"] = "a@feedsubscription.com"
    msg["To"] = "b@example.com"
    msg["Subject"] = "hi"
    msg.set_content("body\n")
    raw = msg.as_bytes()
    signed = dkim.sign(
        raw, b"mail", b"feedsubscription.com", key.private_pem, canonicalize=(b"relaxed", b"simple")
    )
    assert dkim_tags(signed + raw)["c"] == "relaxed/simple"
    assert verify(signed + raw, key.txt_value)
    assert not verify(signed + raw, DkimKey.generate(1024).txt_value)
    assert dkim_tags(raw) == {}


def test_material_lays_files_out_as_the_image_mounts_them(tmp_path: Path) -> None:
    m = Material.create(tmp_path, bits=1024)
    assert (m.keys_dir / "feedsubscription.com.private").is_file()
    assert m.cert.read_bytes().count(b"BEGIN CERTIFICATE") >= 1
    assert b"PRIVATE KEY" in m.cert_key.read_bytes()
    assert m.ca.is_file()
