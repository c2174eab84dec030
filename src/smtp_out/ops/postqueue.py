"""A running relay's queue, through `docker exec`: what it holds (postqueue -j), and holding it
still (postsuper -h) while something reads the files."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker.models.containers import Container

from ..engine.containers import exec_text
from ..engine.polling import NotReady, poll
from .queue_archive import QueueError


def containers_using(containers: list[Container], source: Path) -> list[Container]:
    """Running containers that have `source` mounted (any mount point)."""
    target = str(source.resolve())
    return [
        c for c in containers
        if any(str(Path(m.get("Source", "")).resolve()) == target for m in c.attrs.get("Mounts", []))
    ]  # fmt: skip


def _exec(container: Container, cmd: str) -> str:
    rc, out = exec_text(container, cmd)
    if rc != 0:
        raise QueueError(f"{container.name}: `{cmd}` failed: {out.strip()}")
    return out


def queue_listing(container: Container) -> list[dict[str, Any]]:
    """What the relay's queue holds (postqueue -j), one dict per message."""
    return [json.loads(ln) for ln in _exec(container, "postqueue -j").splitlines() if ln.startswith("{")]


@dataclass(frozen=True)
class Held:
    """The messages held for a snapshot: all held ones, and those this hold put on hold."""

    all: frozenset[str]
    ours: list[str]


@contextlib.contextmanager
def held(container: Container, timeout: float = 30.0) -> Iterator[Held]:
    """Put every message on hold (postsuper -h ALL) and wait until nothing is active, so the
    queue files stand still; afterwards release exactly the messages this put on hold."""
    already = {m["queue_id"] for m in queue_listing(container) if m.get("queue_name") == "hold"}
    _exec(container, "postsuper -h ALL 2>/dev/null")
    try:

        def nothing_active() -> list[dict[str, Any]] | None:
            listing = queue_listing(container)
            return None if any(m.get("queue_name") == "active" for m in listing) else listing

        try:
            listing = poll(nothing_active, timeout=timeout, interval=0.2, seen=lambda: "still active")
        except NotReady:
            raise QueueError(
                f"{container.name}: messages still active after {timeout:.0f}s on hold"
            ) from None
        on_hold = frozenset(m["queue_id"] for m in listing if m.get("queue_name") == "hold")
        yield Held(on_hold, sorted(on_hold - already))
    finally:
        release = [
            m["queue_id"]
            for m in queue_listing(container)
            if m.get("queue_name") == "hold" and m["queue_id"] not in already
        ]
        if release:
            _exec(container, f"printf '%s\\n' {' '.join(release)} | postsuper -H - 2>/dev/null")


#: Every master.cf service that delivers over SMTP or LMTP, deferred; main.cf backdated so that
#: the reload sees it at once (Postfix waits for a just-written main.cf to "cool down").
DRAIN = r"""set -e
transports=$(postconf -M | awk '$8 == "smtp" || $8 == "lmtp" {print $1}' | sort -u | tr '\n' ' ')
postconf -e "defer_transports = $transports"
touch -d "@$(($(date +%s) - 60))" /etc/postfix/main.cf
postfix reload >/dev/null 2>&1
echo "$transports"
"""


def drain(container: Container, timeout: float = 60.0) -> str:
    """Stop starting deliveries and wait until no delivery is in flight, so that stopping the
    relay kills none (a killed delivery that the peer already accepted is sent again: a
    duplicate). Mail is still accepted meanwhile; it waits in the queue. The change lives only in
    the container's main.cf, which the entrypoint rebuilds at the next start. Returns the
    transports it deferred."""
    transports = _exec(container, DRAIN).strip()
    try:
        poll(
            lambda: None if _delivering(container) else True,
            timeout=timeout,
            interval=0.2,
            seen=lambda: "busy",
        )
    except NotReady:
        raise QueueError(
            f"{container.name}: deliveries still in flight {timeout:.0f}s after deferring {transports}"
        ) from None
    return transports


def _delivering(container: Container) -> bool:
    """True while a delivery agent runs or a message is in the active queue."""
    agents, _ = exec_text(container, "pgrep -x 'smtp|lmtp' >/dev/null")
    return agents == 0 or any(m.get("queue_name") == "active" for m in queue_listing(container))
