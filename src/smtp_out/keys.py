"""DKIM keys in the flat layout the image mounts: <domain>.private and <domain>.txt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .material import DKIM_SELECTOR, DkimKey


@dataclass(frozen=True)
class GeneratedKey:
    private: Path
    txt: Path
    record: str


def generate(out_dir: Path, domain: str, selector: str = DKIM_SELECTOR, bits: int = 2048) -> GeneratedKey:
    """Generate an RSA key pair; refuses (FileExistsError) to overwrite an existing key."""
    if bits < 1024:
        raise ValueError("DKIM keys shorter than 1024 bits are rejected by receivers (RFC 8301)")
    for path in (out_dir / f"{domain}.private", out_dir / f"{domain}.txt"):
        if path.exists():
            raise FileExistsError(f"{path} exists; refusing to overwrite a DKIM key (move it away first)")
    key = DkimKey.generate(bits)
    private = key.write_flat(out_dir, domain, selector)
    txt = out_dir / f"{domain}.txt"
    return GeneratedKey(private, txt, txt.read_text())
