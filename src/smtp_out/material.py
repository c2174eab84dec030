"""Throwaway TLS certificates and DKIM keys, for tests and the config test."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DKIM_DOMAIN = "feedsubscription.com"
DKIM_SELECTOR = "mail"


@dataclass(frozen=True)
class DkimKey:
    """An RSA key pair in the form OpenDKIM mounts (PEM) and DNS publishes (TXT)."""

    private_pem: bytes
    public_der: bytes

    @classmethod
    def generate(cls, bits: int = 2048) -> DkimKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(pem, der)

    @property
    def txt_value(self) -> str:
        """The TXT record's value: v=DKIM1; k=rsa; p=<base64 public key>."""
        return f"v=DKIM1; k=rsa; p={base64.b64encode(self.public_der).decode()}"

    def txt_record(self, domain: str = DKIM_DOMAIN, selector: str = DKIM_SELECTOR) -> str:
        """A zone-file line, with the value split in 255-character strings as DNS requires."""
        value = self.txt_value
        parts = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
        return f"{selector}._domainkey.{domain}. IN TXT ( {parts} )\n"

    def write_flat(self, keys_dir: Path, domain: str = DKIM_DOMAIN, selector: str = DKIM_SELECTOR) -> Path:
        """Write <domain>.private (mode 600) and <domain>.txt; refuses to overwrite either."""
        keys_dir.mkdir(parents=True, exist_ok=True)
        private = keys_dir / f"{domain}.private"
        txt = keys_dir / f"{domain}.txt"
        for path in (private, txt):
            if path.exists():
                raise FileExistsError(f"{path} exists; refusing to overwrite a DKIM key")
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.private_pem)
        txt.write_text(self.txt_record(domain, selector))
        return private


@dataclass(frozen=True)
class TlsMaterial:
    """A test CA and a server certificate it issued (chain + key), as PEM."""

    ca_pem: bytes
    chain_pem: bytes
    key_pem: bytes

    @classmethod
    def issue(cls, *hostnames: str) -> TlsMaterial:
        ca = trustme.CA(organization_name="smtp-out test CA")
        cert = ca.issue_cert(*(hostnames or (DKIM_DOMAIN,)))
        chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
        return cls(ca.cert_pem.bytes(), chain, cert.private_key_pem.bytes())


@dataclass(frozen=True)
class Material:
    """Files laid out as the image mounts them: keys/, cert/smtp.cert, cert/smtp.key, ca.pem."""

    root: Path
    dkim: DkimKey
    tls: TlsMaterial

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def cert(self) -> Path:
        return self.root / "cert" / "smtp.cert"

    @property
    def cert_key(self) -> Path:
        return self.root / "cert" / "smtp.key"

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @classmethod
    def create(cls, root: Path, domain: str = DKIM_DOMAIN, bits: int = 2048) -> Material:
        m = cls(root, DkimKey.generate(bits), TlsMaterial.issue(domain, "smtp-out", "localhost"))
        m.dkim.write_flat(m.keys_dir, domain)
        m.cert.parent.mkdir(parents=True, exist_ok=True)
        m.cert.write_bytes(m.tls.chain_pem)
        m.cert_key.write_bytes(m.tls.key_pem)
        m.cert_key.chmod(0o600)
        m.ca.write_bytes(m.tls.ca_pem)
        return m
