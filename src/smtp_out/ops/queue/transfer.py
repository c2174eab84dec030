"""Move the messages of a stopped relay's queue into another relay's queue, so that none is
stranded when a relay goes away (the parallel container at cutover).

In a throwaway container of the stopped relay's image, with its queue as the container's own
queue directory and the destination queue at /dest: `postsuper -r ALL` turns every message into
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

#: Moves every message of the queue mounted at SPOOL into the maildrop of the one at /dest and
#: prints "moved N left M" (M: message files still in the source queue, every MESSAGE_DIRS).
MOVE = f"""set -euo pipefail
postsuper -r ALL 2>&1 | sed 's/^/requeue: /' >&2 || true
uid=$(stat -c %u /dest/maildrop) gid=$(stat -c %g /dest/maildrop)
moved=0
for f in {SPOOL}/maildrop/*; do
  [ -f "$f" ] || continue
  id=${{f##*/}} name=${{f##*/}} i=0
  while [ -e "/dest/maildrop/$name" ]; do i=$((i + 1)); name="${{id}}Z$i"; done
  tmp="/dest/maildrop/.smtp-out-move-$name"
  cp "$f" "$tmp"
  chown "$uid:$gid" "$tmp"
  chmod 0600 "$tmp"
  chmod 0700 "$tmp"
  mv "$tmp" "/dest/maildrop/$name"
  rm -f "$f"
  moved=$((moved + 1))
done
left=$(find {" ".join(f"{SPOOL}/{d}" for d in sorted(MESSAGE_DIRS))} -type f 2>/dev/null | wc -l)
echo "moved $moved left $left"
"""


@dataclass(frozen=True)
class Moved:
    moved: int
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
    m = re.search(rb"moved (\d+) left (\d+)", out)
    if m is None:
        raise QueueError(f"moving {source} into {dest}: no count reported ({out[-200:]!r})")
    return Moved(int(m.group(1)), int(m.group(2)))
