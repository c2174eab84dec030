"""A running relay, through `docker exec`: what its queue holds (postqueue -j), holding it still
(postsuper -h) while something reads the files, and bringing it to rest before it is stopped:
draining its deliveries and quiescing its submission.

Why both: `docker stop` ends the Postfix master, and with it (PID 1) every process in the
container. A delivery killed after the remote accepted the message is sent again; a submission
killed after the message was queued but before the client read its 250 makes the client submit
it again. Either way a message would leave twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker.models.containers import Container

from ...engine.containers import exec_text
from ...engine.polling import NotReady, poll
from . import listing
from .archive import QueueError


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


@dataclass(frozen=True)
class Held:
    """The messages held for a snapshot: all held ones, and those this hold put on hold."""

    all: frozenset[str]
    ours: list[str]


@contextlib.contextmanager
def held(container: Container, timeout: float = 30.0) -> Iterator[Held]:
    """Put every message on hold (postsuper -h ALL) and wait until nothing is active, so the
    queue files stand still; afterwards release exactly the messages this put on hold."""
    already = {m["queue_id"] for m in listing.messages(container) if m.get("queue_name") == "hold"}
    _exec(container, "postsuper -h ALL 2>/dev/null")
    try:

        def nothing_active() -> list[dict[str, Any]] | None:
            queued = listing.messages(container)
            return None if any(m.get("queue_name") == "active" for m in queued) else queued

        try:
            queued = poll(nothing_active, timeout=timeout, interval=0.2, seen=lambda: "still active")
        except NotReady:
            raise QueueError(
                f"{container.name}: messages still active after {timeout:.0f}s on hold"
            ) from None
        on_hold = frozenset(m["queue_id"] for m in queued if m.get("queue_name") == "hold")
        yield Held(on_hold, sorted(on_hold - already))
    finally:
        release = [
            m["queue_id"]
            for m in listing.messages(container)
            if m.get("queue_name") == "hold" and m["queue_id"] not in already
        ]
        if release:
            _exec(container, f"printf '%s\\n' {' '.join(release)} | postsuper -H - 2>/dev/null")


#: Every master.cf service that delivers over SMTP or LMTP, deferred; main.cf backdated so that
#: the reload sees it at once (Postfix waits for a just-written main.cf to "cool down"). Prints
#: the queue manager's pid from before the reload (the reload restarts it), then the transports.
DRAIN = r"""set -e
qmgr=$(pgrep -x qmgr || echo none)
transports=$(postconf -M | awk '$8 == "smtp" || $8 == "lmtp" {print $1}' | sort -u | tr '\n' ' ')
postconf -e "defer_transports = $transports"
touch -d "@$(($(date +%s) - 60))" /etc/postfix/main.cf
postfix reload >/dev/null 2>&1
echo "$qmgr $transports"
"""


def drain(container: Container, timeout: float = 60.0) -> str:
    """Stop starting deliveries and wait until no delivery is in flight, so that stopping the
    relay kills none (a killed delivery that the peer already accepted is sent again: a
    duplicate). Mail is still accepted meanwhile; it waits in the queue. The change lives only in
    the container's main.cf, which the entrypoint rebuilds at the next start. Returns the
    transports it deferred.

    In flight means: the queue manager that was running before the reload (it may still hand out
    messages) is still there, or a delivery agent has an established connection. An agent that
    is still connecting (a dead or black-holed MX keeps it there for smtp_connect_timeout, 30 s,
    per address) has sent nothing: it is frozen, checked again and ended, and its message stays
    queued. Without that, a drain waited on a dead MX for minutes."""
    old_qmgr, transports = _exec(container, DRAIN).strip().split(" ", 1)
    last: list[str] = []

    def idle() -> bool | None:
        last[:] = in_flight(container, old_qmgr)
        return None if last else True

    try:
        poll(idle, timeout=timeout, interval=0.2, seen=lambda: "; ".join(last))
    except NotReady:
        raise QueueError(
            f"{container.name}: deliveries still in flight {timeout:.0f}s after deferring {transports}"
            f" ({'; '.join(last)})"
        ) from None
    return transports


#: Per delivery agent, frozen while it is looked at: an established connection is a delivery in
#: flight (said, then the agent resumes); one still connecting (SYN_SENT) is ended. Then the
#: queue manager from before the reload, if it still runs.
IN_FLIGHT = r"""old_qmgr=$1
for pid in $(pgrep -x 'smtp|lmtp'); do
  kill -STOP "$pid" 2>/dev/null || continue
  conns=$(netstat -tnp 2>/dev/null | awk -v p="$pid/" 'index($7, p) == 1 {print $6 " " $5}')
  case "$conns" in
    *ESTABLISHED*) echo "agent $pid ($(ps -o etimes= -p "$pid" | tr -d ' ') s): $conns" ;;
    *SYN_SENT*) kill -TERM "$pid" ;;
  esac
  kill -CONT "$pid" 2>/dev/null || true
done
if [ "$(pgrep -x qmgr)" = "$old_qmgr" ]; then echo "qmgr $old_qmgr has not restarted since the reload"; fi
true"""


def in_flight(container: Container, old_qmgr: str) -> list[str]:
    """What keeps a draining relay from being at rest, one line each (none: at rest)."""
    rc, out = exec_text(container, ["sh", "-c", IN_FLIGHT, "in-flight", old_qmgr])
    if rc != 0:
        raise QueueError(f"{container.name}: checking deliveries in flight failed: {out.strip()}")
    return [" ".join(line.split()) for line in out.splitlines() if line.strip()]


#: New submissions are told to try again later (450 at RCPT); sessions already running finish
#: on the configuration they started with (a reload lets them), and nothing new gets queued.
QUIESCE = r"""set -e
pids=$(pgrep -x smtpd | tr '\n' ' ' || true)
postconf -e "smtpd_client_restrictions = defer"
touch -d "@$(($(date +%s) - 60))" /etc/postfix/main.cf
postfix reload >/dev/null 2>&1
echo "$pids"
"""


def quiesce(container: Container, timeout: float = 30.0) -> None:
    """Stop accepting new mail (450, the client retries elsewhere or later) and wait until every
    SMTP session that was running has ended, so that stopping the relay cuts no submission short.
    Like `drain`, the change lives only in the container's main.cf."""
    old = set(_exec(container, QUIESCE).split())

    def sessions_ended() -> bool | None:
        _, out = exec_text(container, "pgrep -x smtpd || true")
        return None if old & set(out.split()) else True

    try:
        poll(sessions_ended, timeout=timeout, interval=0.05, seen=lambda: "sessions still running")
    except NotReady:
        raise QueueError(
            f"{container.name}: SMTP sessions still running {timeout:.0f}s after quiescing"
        ) from None


def pick_up(container: Container, timeout: float = 60.0) -> None:
    """Have pickup queue everything in maildrop/ now (mail moved in from another queue) and wait
    until maildrop/ is empty: a pickup killed between queuing a file and removing it would queue
    it again after the restart."""
    count = "find \"$(postconf -h queue_directory)/maildrop\" -type f ! -name '.*' | wc -l"
    _exec(container, "postkick public pickup W")
    left = "?"

    def empty() -> bool | None:
        nonlocal left
        left = _exec(container, count).strip()
        return True if left == "0" else None

    try:
        poll(empty, timeout=timeout, interval=0.1, seen=lambda: left)
    except NotReady:
        raise QueueError(
            f"{container.name}: {left} file(s) still in maildrop/ {timeout:.0f}s after kicking pickup"
        ) from None
