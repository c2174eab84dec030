"""Stage tls.sh on the host (openssl only): the certificate chain and key, against a temporary
CONF_DIR laid out as the image mounts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtp_out.material import TlsMaterial

from .entrypoint_shell import errors, run_stage


@pytest.fixture(scope="module")
def tls() -> TlsMaterial:
    return TlsMaterial.issue("feedsubscription.com")


def conf(tmp_path: Path, chain: bytes | None, key: bytes | None) -> dict[str, str]:
    cert_dir = tmp_path / "etc" / "postfix" / "cert"
    cert_dir.mkdir(parents=True)
    if chain is not None:
        (cert_dir / "smtp.cert").write_bytes(chain)
    if key is not None:
        (cert_dir / "smtp.key").write_bytes(key)
    return {"CONF_DIR": str(tmp_path / "etc" / "postfix")}


def test_a_matching_chain_and_key_pass(tmp_path: Path, tls: TlsMaterial) -> None:
    r = run_stage("check_tls", paths=conf(tmp_path, tls.chain_pem, tls.key_pem))
    assert (r.returncode, r.stderr) == (0, "")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-cert", "cert/smtp.cert: TLS certificate not found (mount fullchain.pem there)"),
        ("no-key", "cert/smtp.key: TLS key not found (mount privkey.pem there)"),
        ("garbage-cert", "cert/smtp.cert: not a PEM certificate"),
        ("garbage-key", "cert/smtp.key: not a readable PEM private key"),
        ("other-key", "cert/smtp.key: does not match the certificate in "),
    ],
)
def test_bad_tls_material_is_one_error_naming_the_file(
    tmp_path: Path, tls: TlsMaterial, case: str, message: str
) -> None:
    chain: bytes | None = tls.chain_pem
    key: bytes | None = tls.key_pem
    if case == "no-cert":
        chain = None
    elif case == "no-key":
        key = None
    elif case == "garbage-cert":
        chain = b"not a certificate\n"
    elif case == "garbage-key":
        key = b"not a key\n"
    elif case == "other-key":
        key = TlsMaterial.issue("feedsubscription.com").key_pem
    paths = conf(tmp_path, chain, key)
    r = run_stage("check_tls", paths=paths)
    assert r.returncode == 1
    (err,) = errors(r)
    assert err.startswith(f"[smtp-out] ERROR: {paths['CONF_DIR']}/{message}"), err
