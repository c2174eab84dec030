"""Move the messages of a stopped relay's queue into another relay's queue, so that none is
stranded when a relay goes away (the parallel container at cutover).

In a throwaway container of the stopped relay's image, with its queue as the container's own
queue directory and the destination queue at /dest: held messages are copied into the
destination's hold queue as they are (mail the operator held, or a canary an interrupted check
left, stays held); `postsuper -r ALL incoming active deferred` turns every other message into
a maildrop file (requeued mail keeps its DKIM signature and passes no milter again), and each
file is copied into the destination's maildrop/ under a dot-name with mode 0600 (pickup skips
both), given the destination's Postfix owner, made ready (0700) and renamed into place. The
destination's pickup then queues them (at once when it is kicked, else within a minute).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import docker

from ... import LABEL, SPOOL
from ...engine.containers import unique
from ...engine.files import FolderUnavailable
from .archive import MESSAGE_DIRS, QueueError

#: Requeue what waits to be delivered (never the hold queue: held mail stays held), copy each
#: maildrop file into the destination's maildrop, and each held message into the destination's
#: hold/ as it is (a held queue file is complete; Postfix keeps it there until released).
MOVE = r"""set -euo pipefail
postsuper -r ALL incoming active deferred 2>&1 | sed 's/^/requeue: /' >&2 || true
uid=$(stat -c %u /dest/maildrop) gid=$(stat -c %g /dest/maildrop)
mkdir -p /dest/hold && chown "$uid:$gid" /dest/hold
taken() {
  [ -n "$(find /dest/maildrop /dest/incoming /dest/active /dest/deferred /dest/hold -name "$1" 2>/dev/null \
    | head -n 1)" ]
}
put() {  # put <file> <queue dir> <final mode>
  local f=$1 to=$2 id=${1##*/} name=${1##*/} i=0
  while taken "$name"; do i=$((i + 1)); name="${id}Z$i"; done
  local tmp="/dest/$to/.smtp-out-move-$name"
  cp "$f" "$tmp"
  chown "$uid:$gid" "$tmp"
  chmod 0600 "$tmp"
  chmod "$3" "$tmp"
  mv "$tmp" "/dest/$to/$name"
  rm -f "$f"
}
moved=0 held=0
for f in SPOOL/maildrop/*; do
  [ -f "$f" ] || continue
  put "$f" maildrop 0700
  moved=$((moved + 1))
done
while IFS= read -r -d '' f; do
  put "$f" hold 0700
  held=$((held + 1))
done < <(find SPOOL/hold -type f ! -name '.*' -print0 2>/dev/null)
left=$(find DIRS -type f 2>/dev/null | wc -l)
echo "moved $moved held $held left $left"
""".replace("SPOOL", SPOOL).replace("DIRS", " ".join(f"{SPOOL}/{d}" for d in sorted(MESSAGE_DIRS)))


@dataclass(frozen=True)
class Moved:
    moved: int
    held: int  # of them, held messages moved into the destination's hold queue, still held
    left: int  # messages still in the source queue afterwards (0 when all went)


def move_queue(client: docker.DockerClient, image: str, source: Path, dest: Path) -> Moved:
    """Move every message of the queue at `source` (its relay stopped) into the maildrop of the
    queue at `dest`, through a throwaway container of `image` (the source relay's image)."""
    if not (dest / "maildrop").exists():
        raise QueueError(f"{dest}: no maildrop/ in it: not a Postfix queue directory")
    try:
        out = client.containers.run(
            image, entrypoint=["bash", "-c", MOVE], name=unique("smtp-out-move"), labels={LABEL: "1"},
            network_disabled=True, remove=True, stderr=False,
            volumes={str(source): {"bind": SPOOL, "mode": "rw"}, str(dest): {"bind": "/dest", "mode": "rw"}},
        )  # fmt: skip
    except docker.errors.ContainerError as exc:
        raise QueueError(f"moving {source} into {dest} failed: {exc.stderr!r}") from None
    except docker.errors.ImageNotFound:
        raise FolderUnavailable(f"image {image} is not present") from None
    m = re.search(rb"moved (\d+) held (\d+) left (\d+)", out)
    if m is None:
        raise QueueError(f"moving {source} into {dest}: no count reported ({out[-200:]!r})")
    return Moved(int(m.group(1)) + int(m.group(2)), int(m.group(2)), int(m.group(3)))
