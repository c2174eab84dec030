"""Throwaway TLS certificates and DKIM keys laid out as the image mounts them, for the config
test, the tests and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

from .dkim import DKIM_DOMAIN, DkimKey


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
