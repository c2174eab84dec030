"""cleanup (the spec's Phase 7): remove what the rollout left, never a message.

Stopped parallel containers go, with their queue directory, only when no message remains in it
(a running one is left alone: stop it, or cut over, first). A parallel queue directory that
deploy-parallel made and no container uses any more is removed when empty, and reported when it
still holds mail. Rollback points beyond the newest `keep` go (their image tag, the image itself
once nothing uses it, record and queue backup); the newest one always stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import docker

from ... import SPOOL
from ...engine.config import mounted_at
from ...engine.files import MOUNT, mounted
from ...errors import UsageError
from ..queue.backup import messages_in
from .common import ROLE, find_container
from .compose import ComposeService
from .parallel import known_queues
from .points import forget, points, state_dir


def remove_queue_dir(client: docker.DockerClient, image: str, folder: Path) -> None:
    """Empty `folder` as root through the engine (Postfix owns what is in it), then remove it."""
    with mounted(client, image, folder, read_only=False, command=f"find {MOUNT} -mindepth 1 -delete"):
        pass
    folder.rmdir()


@dataclass
class CleanupOutcome:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    exit_code: int = 0

    def text(self) -> str:
        lines = [f"removed {item}" for item in self.removed] + [f"kept {item}" for item in self.kept]
        return "\n".join(lines or ["nothing to clean up"])

    def to_json(self) -> dict[str, object]:
        return {"removed": self.removed, "kept": self.kept}


def cleanup(client: docker.DockerClient, *, production: str = "smtp-out", keep: int = 3) -> CleanupOutcome:
    if keep < 1:
        raise UsageError(f"--keep {keep}: the newest rollback point always stays (give 1 or more)")
    out = CleanupOutcome()
    for c in client.containers.list(all=True, filters={"label": f"{ROLE}=parallel"}):
        if c.status == "running":
            out.kept.append(f"{c.name}: running (stop it, or cut over, first)")
            continue
        queue_dir = mounted_at(c, SPOOL)
        image = str(c.attrs["Image"])
        if queue_dir is not None and Path(queue_dir).exists():
            if n := messages_in(client, image, Path(queue_dir)):
                out.kept.append(f"{c.name} and {queue_dir}: {n} message(s) still queued there")
                continue
            c.remove()
            remove_queue_dir(client, image, Path(queue_dir))
            out.removed += [f"container {c.name}", f"queue directory {queue_dir}"]
        else:
            c.remove()
            out.removed.append(f"container {c.name}")
    prod = find_container(client, production)
    if prod is None:
        return out
    folder = state_dir(ComposeService.of(production, prod.labels))
    _orphaned_queues(client, folder, str(prod.attrs["Image"]), out)
    for point in points(folder)[keep:]:
        forget(client, point, folder)
        out.removed.append(f"rollback point {point.name} ({point.tag})")
    out.kept += [f"rollback point {p.name} ({p.tag})" for p in points(folder)]
    return out


def _orphaned_queues(client: docker.DockerClient, folder: Path, image: str, out: CleanupOutcome) -> None:
    """Parallel queue directories deploy-parallel made that no container mounts any more."""
    used = {mounted_at(c, SPOOL) for c in client.containers.list(all=True)}
    for queue in known_queues(folder):
        if queue in used or not Path(queue).exists():
            continue
        if n := messages_in(client, image, Path(queue)):
            out.kept.append(
                f"orphaned parallel queue {queue}: {n} message(s) still queued there "
                "(no container uses it; its mail is kept: run a relay on it to deliver them)"
            )
        else:
            remove_queue_dir(client, image, Path(queue))
            out.removed.append(f"orphaned parallel queue directory {queue} (empty)")
