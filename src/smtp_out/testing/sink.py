"""What the sink MX stored: one <n>.eml (the bytes received) and <n>.json (arrival time, peer,
envelope) per message, in a host folder the sink container writes to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..engine.polling import poll


@dataclass(frozen=True)
class SinkMessage:
    raw: bytes
    arrived: float
    peer: str
    mail_from: str
    rcpt_tos: tuple[str, ...]

    @property
    def header_seq(self) -> int | None:
        """The X-Test-Seq header the test client numbers its messages with (None: not the client's)."""
        for line in self.raw.split(b"\n"):
            if line.lower().startswith(b"x-test-seq:"):
                return int(line.split(b":", 1)[1])
            if not line.strip():
                break
        return None


@dataclass(frozen=True)
class Sink:
    """The host folder a sink container stores messages in."""

    folder: Path

    def received(self) -> list[SinkMessage]:
        """Every message the sink stored, in arrival order."""
        out = []
        for meta_path in sorted(self.folder.glob("*.json")):
            meta = json.loads(meta_path.read_text())
            raw = meta_path.with_suffix(".eml").read_bytes()
            out.append(
                SinkMessage(raw, meta["arrived"], meta["peer"], meta["mail_from"], tuple(meta["rcpt_tos"]))
            )
        return sorted(out, key=lambda m: m.arrived)

    def wait_for_received(self, n: int, timeout: float = 60.0, interval: float = 0.1) -> list[SinkMessage]:
        """Poll until the sink holds at least `n` messages; returns them (NotReady after `timeout`)."""
        count = 0

        def probe() -> list[SinkMessage] | None:
            nonlocal count
            count = len(list(self.folder.glob("*.json")))
            return self.received() if count >= n else None

        return poll(
            probe,
            timeout=timeout,
            interval=interval,
            seen=lambda: f"the sink holds {count} of {n} messages after {timeout:.0f}s",
        )

    def clear(self) -> None:
        for f in self.folder.iterdir():
            f.unlink()
