"""DKIM: keys in the flat layout the image mounts (<domain>.private, <domain>.txt), the TXT
record to publish, and signatures read and verified with dkimpy."""

from __future__ import annotations

import base64
import email
import email.policy
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import SmtpOutError, UsageError

DKIM_DOMAIN = "feedsubscription.com"
DKIM_SELECTOR = "mail"
#: Key sizes `invoke dkim-key` makes: 2048 is what receivers expect (RFC 8301 asks for at least
#: 1024, RFC 6376 verifiers need only handle up to 4096); 4096 fits a TXT record in two strings.
KEY_BITS = (2048, 4096)
#: OpenDKIM's log line (after "<queue id>: ") for a message it signed with the image's key.
SIGNED_LOG_LINE = rf"DKIM-Signature field added \(s={re.escape(DKIM_SELECTOR)}, d={re.escape(DKIM_DOMAIN)}\)"
#: A DNS name as RFC 1035 letters-digits-hyphens labels: no '/', no '..', no empty label.
_DOMAIN = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)


class KeyExists(SmtpOutError):
    """A key file is already there: keys are never overwritten."""


def check_domain(domain: str, what: str = "--domain") -> str:
    """`domain` when it is a DNS name (letters, digits, hyphens, dots); else a UsageError."""
    if not _DOMAIN.fullmatch(domain):
        raise UsageError(f"{what} {domain!r} is not a domain name (letters, digits, hyphens and dots)")
    return domain


@dataclass(frozen=True)
class DkimKey:
    """An RSA key pair in the form OpenDKIM mounts (PEM) and DNS publishes (TXT)."""

    private_pem: bytes
    public_der: bytes

    @classmethod
    def generate(cls, bits: int = 2048) -> DkimKey:
        if bits < 1024:
            raise UsageError("DKIM keys shorter than 1024 bits are rejected by receivers (RFC 8301)")
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

    def write_flat(
        self, keys_dir: Path, domain: str = DKIM_DOMAIN, selector: str = DKIM_SELECTOR
    ) -> KeyFiles:
        """Write <domain>.private (mode 600) and <domain>.txt into `keys_dir`; refuses (KeyExists)
        to overwrite either, and refuses a domain that is not a DNS name (UsageError)."""
        check_domain(domain)
        private, txt = keys_dir / f"{domain}.private", keys_dir / f"{domain}.txt"
        for path in (private, txt):
            if path.exists():
                raise KeyExists(f"{path} exists; refusing to overwrite a DKIM key (move it away first)")
        try:
            keys_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyExists(f"{private} exists; refusing to overwrite a DKIM key") from None
        except OSError as exc:
            raise SmtpOutError(f"{keys_dir}: cannot write the key there ({exc.strerror})") from None
        with os.fdopen(fd, "wb") as f:
            f.write(self.private_pem)
        record = self.txt_record(domain, selector)
        txt.write_text(record)
        return KeyFiles(private, txt, record, domain, selector)


@dataclass(frozen=True)
class KeyFiles:
    """The files a generated key was written to, and the TXT record to publish."""

    private: Path
    txt: Path
    record: str
    domain: str = DKIM_DOMAIN
    selector: str = DKIM_SELECTOR

    exit_code = 0

    def text(self) -> str:
        return (
            f"wrote {self.private} (mode 600) and {self.txt}\n"
            f"publish this TXT record for {self.selector}._domainkey.{self.domain}:\n{self.record.rstrip()}"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "private": str(self.private),
            "txt": str(self.txt),
            "name": f"{self.selector}._domainkey.{self.domain}",
            "record": self.record.rstrip(),
            "value": "".join(self.record.split('"')[1::2]),
        }


def generate(out_dir: Path, domain: str, selector: str = DKIM_SELECTOR, bits: int = 2048) -> KeyFiles:
    """Generate an RSA key pair and write it in the flat layout; never overwrites."""
    low, high = KEY_BITS
    if not low <= bits <= high:
        raise UsageError(f"--bits {bits}: expected a whole number from {low} to {high}")
    check_domain(domain)
    check_domain(selector, "--selector")
    return DkimKey.generate(bits).write_flat(out_dir, domain, selector)


# --- signatures -------------------------------------------------------------------------


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
    import dkim  # dkimpy

    expected = f"{selector}._domainkey.{domain}."

    def dnsfunc(name: bytes | str, timeout: int = 5) -> bytes:
        name_s = name.decode() if isinstance(name, bytes) else name
        return txt_value.encode() if name_s.rstrip(".") + "." == expected else b""

    return bool(dkim.verify(raw, dnsfunc=dnsfunc))


# --- published key records ----------------------------------------------------------------


@dataclass(frozen=True)
class KeyRecord:
    """A DKIM key record (the TXT value at <selector>._domainkey.<domain>) as a verifier reads it."""

    tags: dict[str, str]
    bits: int
    key_type: str

    @property
    def public_b64(self) -> str:
        """The p= tag, whitespace removed (base64 of the DER public key)."""
        return re.sub(r"\s+", "", self.tags.get("p", ""))

    @property
    def testing(self) -> bool:
        """True when t= carries the y flag (receivers may treat the signatures as unsigned)."""
        return "y" in (flag.strip() for flag in self.tags.get("t", "").split(":"))


def read_key_record(txt: str, name: str = "") -> KeyRecord:
    """Parse a DKIM key record with dkimpy, as its verifier does (tags, key type, key size);
    ValueError says why it does not parse."""
    import dkim  # dkimpy
    import dkim.util

    try:
        raw = dkim.util.parse_tag_value(txt.encode("ascii"))
        _pk, bits, ktag, _tlsrpt = dkim.evaluate_pk(name, txt.encode("ascii"))
    except (UnicodeEncodeError, dkim.util.InvalidTagValueList, dkim.KeyFormatError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    if not bits:
        raise ValueError("the record names no usable key")
    tags = {k.decode("ascii", "replace"): v.decode("ascii", "replace") for k, v in raw.items()}
    return KeyRecord(tags, int(bits), (ktag or b"rsa").decode("ascii", "replace"))
