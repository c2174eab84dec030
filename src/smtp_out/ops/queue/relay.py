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
import shlex
from collections.abc import Callable, Iterator, Mapping
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


def held_ids(container: Container) -> set[str]:
    """The queue ids of the messages on hold."""
    return {m["queue_id"] for m in listing.messages(container) if m.get("queue_name") == "hold"}


def release_all_but(container: Container, keep: set[str] | frozenset[str]) -> list[str]:
    """Release every held message but those in `keep` (held before a hold began); the ids released."""
    release = sorted(held_ids(container) - set(keep))
    if release:
        _exec(container, f"printf '%s\\n' {' '.join(release)} | postsuper -H - 2>/dev/null")
    return release


@contextlib.contextmanager
def held(
    container: Container, timeout: float = 30.0, before: Callable[[set[str]], None] | None = None
) -> Iterator[Held]:
    """Put every message on hold (postsuper -h ALL) and wait until nothing is active, so the
    queue files stand still; afterwards release exactly the messages this put on hold.
    `before` is told which messages were held already, before anything is held (a journal
    records them, so that an interrupted hold can be undone exactly)."""
    already = held_ids(container)
    if before is not None:
        before(already)
    try:
        _exec(container, "postsuper -h ALL 2>/dev/null")

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
        release_all_but(container, already)


#: A main.cf that sets a parameter twice (the spec's image appends its override file to Debian's
#: main.cf) makes every Postfix process log a warning at a reload; postlogd, logging the same
#: warnings to itself, then blocks on its own socket and the reload never ends. Rewritten as
#: `postconf -n` reads it (the last setting wins, as it always did) before any reload.
TIDY = r"""if postconf -n 2>&1 >/dev/null | grep -q 'overriding earlier entry'; then
  postconf -n 2>/dev/null > /etc/postfix/main.cf.smtp-out-tidy
  cat /etc/postfix/main.cf.smtp-out-tidy > /etc/postfix/main.cf
  rm -f /etc/postfix/main.cf.smtp-out-tidy
fi
"""

#: Reload, its output kept for an error (with its output sent to /dev/null, a reload of the spec's
#: image right after the main.cf rewrite above failed).
RELOAD = 'out=$(postfix reload 2>&1) || { echo "$out" >&2; exit 1; }'

#: Every master.cf service that delivers over SMTP or LMTP, deferred; main.cf backdated so that
#: the reload sees it at once (Postfix waits for a just-written main.cf to "cool down"). Prints
#: the queue manager's pid from before the reload (the reload restarts it), then the transports.
DRAIN = r"""set -e
qmgr=$(pgrep -x qmgr || echo none)
TIDY
transports=$(postconf -M 2>/dev/null | awk '$8 == "smtp" || $8 == "lmtp" {print $1}' | sort -u | tr '\n' ' ')
before=$(postconf -n -h defer_transports 2>/dev/null || true)
postconf -e "defer_transports = $transports" 2>/dev/null
touch -d "@$(($(date +%s) - 60))" /etc/postfix/main.cf
out=$(postfix reload 2>&1) || {
  # not drained after all (Postfix not running): main.cf must not start it drained later
  if [ -n "$before" ]; then postconf -e "defer_transports = $before"; else postconf -X defer_transports; fi
  echo "$out" >&2
  exit 1
}
echo "$qmgr $transports"
""".replace("TIDY\n", TIDY)


#: The main.cf settings drain and quiesce change.
DRAINED, QUIESCED = "defer_transports", "smtpd_client_restrictions"


def settings(container: Container, *names: str) -> dict[str, str | None]:
    """The values main.cf sets for `names` (None: not set there, Postfix's default applies)."""
    out: dict[str, str | None] = {}
    for name in names:
        rc, text = exec_text(container, f"postconf -n -h {name} 2>/dev/null")
        out[name] = text.strip() if rc == 0 and text.strip() else None
    return out


def restore(container: Container, values: Mapping[str, str | None]) -> None:
    """Put main.cf settings back as `settings` read them, and reload: undoes a drain or a quiesce."""
    lines = ["set -e", TIDY]
    for name, value in values.items():
        lines.append(
            f"postconf -X {name}" if value is None else f"postconf -e {shlex.quote(f'{name} = {value}')}"
        )
    lines += ['touch -d "@$(($(date +%s) - 60))" /etc/postfix/main.cf', RELOAD]
    _exec(container, "\n".join(lines))


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
TIDY
pids=$(pgrep -x smtpd | tr '\n' ' ' || true)
postconf -e "smtpd_client_restrictions = defer" 2>/dev/null
touch -d "@$(($(date +%s) - 60))" /etc/postfix/main.cf
out=$(postfix reload 2>&1) || { echo "$out" >&2; exit 1; }
echo "$pids"
""".replace("TIDY\n", TIDY)


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
    count = "find \"$(postconf -h queue_directory 2>/dev/null)/maildrop\" -type f ! -name '.*' | wc -l"
    # The kick only hurries pickup (it scans maildrop/ by itself too); a predecessor whose
    # main.cf makes every Postfix tool warn has been seen to fail it once: tried again, and the
    # wait below is what counts.
    exec_text(
        container, "for i in 1 2 3 4 5; do postkick public pickup W 2>/dev/null && break; sleep 0.2; done"
    )
    left = "?"

    def empty() -> bool | None:
        nonlocal left
        left = (_exec(container, count).strip().splitlines() or ["?"])[-1]
        return True if left == "0" else None

    try:
        poll(empty, timeout=timeout, interval=0.1, seen=lambda: left)
    except NotReady:
        raise QueueError(
            f"{container.name}: {left} file(s) still in maildrop/ {timeout:.0f}s after kicking pickup"
        ) from None
