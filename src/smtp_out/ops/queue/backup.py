"""Back up and restore a Postfix queue directory through the Docker engine.

The queue is read and written as root by the engine, through a throwaway container of the relay
image that has the directory bind-mounted and never starts Postfix: an operator in the docker
group needs no sudo, and no file is skipped for want of permission. A backup takes, from that one
container, a `find` listing of the queue and a tar of each queue subdirectory (docker cp), and
cross-checks them: the archive must hold every message the queue held. A queue that a running
relay mounts is backed up only with --hold: every message is held (postsuper -h) until the
snapshot is taken, and the messages the backup held must all be in it.

The archive format, its verification and the safety rules of restore: ops.queue.archive.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from ... import IMAGE
from ...engine.containers import logs
from ...engine.files import MOUNT, mounted, read_tar, write_tar
from ...errors import EXIT_USAGE, UsageError
from ...progress import Progress
from .archive import (
    MANIFEST,
    MESSAGE_DIRS,
    QUEUE_DIRS,
    Entry,
    Manifest,
    Member,
    QueueError,
    queue_id,
    restore_tar,
    verify_archive,
    write_archive,
)
from .relay import containers_using, held

__all__ = ["MANIFEST", "BackupOutcome", "QueueError", "QueueInUse", "RestoreOutcome", "backup", "restore"]

#: Lists every file and directory of the queue subdirectories that exist, as "<type> <path>".
FIND = (
    f'cd {MOUNT} && set -- && for d in {" ".join(QUEUE_DIRS)}; do [ -e "$d" ] && set -- "$@" "$d"; done; '
    '[ "$#" -eq 0 ] || find "$@" -printf "%y %p\\n"'
)


class QueueInUse(QueueError):
    """A running container has the queue mounted and the caller did not ask to hold it."""

    exit_code = EXIT_USAGE


# --- the queue as the engine sees it -----------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The queue's files and directories read by the engine, and the `find` listing taken from
    the same container just before, for the cross-check."""

    members: list[Member]
    listed_files: set[str]

    @property
    def files(self) -> set[str]:
        return {m.entry.path for m in self.members if m.entry.type == "file"}

    @property
    def message_ids(self) -> set[str]:
        return {queue_id(p) for p in self.files if p.split("/")[0] in MESSAGE_DIRS}


def snapshot(client: docker.DockerClient, source: Path, image: str = IMAGE) -> Snapshot:
    """Every file and directory under the queue subdirectories of `source`, read as root."""
    with mounted(client, image, source, read_only=True, command=FIND) as container:
        listing = [line.split(" ", 1) for line in logs(container).splitlines() if " " in line]
        odd = [path for kind, path in listing if kind not in ("f", "d")]
        if odd:
            raise QueueError(
                f"{source}: unexpected entries in the queue (not files or directories): {odd[:3]}"
            )
        tops = sorted({path.split("/")[0] for _, path in listing})
        if not tops:
            raise QueueError(f"{source}: no Postfix queue directories (deferred, active, ...) in it")
        members: list[Member] = []
        for top in tops:
            members += _members(source, read_tar(container, f"{MOUNT}/{top}"))
    return Snapshot(members, {path for kind, path in listing if kind == "f"})


def _members(source: Path, stream: io.RawIOBase) -> Iterator[Member]:
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for info in tar:
            mode = stat.S_IMODE(info.mode)
            if info.isdir():
                yield Member(Entry(info.name, "dir", mode, info.uid, info.gid, info.mtime))
            elif info.isfile():
                f = tar.extractfile(info)
                data = f.read() if f else b""
                yield Member(Entry(info.name, "file", mode, info.uid, info.gid, info.mtime), data)
            else:
                raise QueueError(f"{source}: {info.name} is neither a file nor a directory")


# --- backup and restore ------------------------------------------------------------------


def cross_check(source: Path, snap: Snapshot, held_ids: frozenset[str] | None = None) -> None:
    """The snapshot must hold what the queue held: with no relay running, exactly the files the
    listing saw; with a relay holding the queue (new mail may still arrive), every held message."""
    if held_ids is None and snap.files != snap.listed_files:
        odd = sorted(snap.files ^ snap.listed_files)[:3]
        raise QueueError(
            f"{source}: the engine's copy differs from the queue listing ({odd}); nothing written"
        )
    missing = sorted((held_ids or frozenset()) - snap.message_ids)
    if missing:
        raise QueueError(
            f"{source}: held message(s) {missing[:3]} missing from the snapshot; nothing written"
        )


def _check_source(source: Path) -> None:
    try:
        if not source.is_dir():
            raise QueueError(
                f"{source}: not a directory (give the queue directory with --source or POSTFIX_DIR_ROOT)"
            )
    except PermissionError:
        raise QueueError(f"{source}: cannot reach it (a folder above it is closed to this user)") from None


def backup(
    client: docker.DockerClient,
    source: Path,
    archive: Path,
    *,
    hold: bool = False,
    progress: Progress = lambda line: None,
    before_hold: Callable[[set[str]], None] | None = None,
) -> BackupOutcome:
    """Back up `source`. When running containers have it mounted, refuse unless `hold`; with
    `hold` the queue is held for a consistent snapshot and released afterwards."""
    _check_source(source)
    if archive.exists():
        raise QueueError(f"{archive} exists; refusing to overwrite it (choose another --archive)")
    users = containers_using(client.containers.list(), source)
    if users and not hold:
        names = ", ".join(str(c.name) for c in users)
        raise QueueInUse(
            f"{source} is mounted by running container(s) {names}; pass --hold to hold the queue "
            "(postsuper -h ALL) for a consistent snapshot and release it afterwards, or stop the container"
        )
    if len(users) > 1:
        raise QueueError(f"{source} is mounted by several running containers; stop all but one first")
    if not users:
        snap = snapshot(client, source)
        cross_check(source, snap)
        return BackupOutcome(archive, write_archive(snap.members, archive, str(source)))
    relay = users[0]
    with held(relay, before=before_hold) as on_hold:
        progress(f"held {len(on_hold.ours)} message(s) in {relay.name} for the snapshot")
        snap = snapshot(client, source, str(relay.image.id) if relay.image else IMAGE)
        cross_check(source, snap, on_hold.all)
        manifest = write_archive(snap.members, archive, str(source), on_hold.ours)
    progress(f"released them in {relay.name}")
    return BackupOutcome(archive, manifest)


def check_target(target: Path) -> None:
    """`target` must be a new or empty directory the user can create or read."""
    try:
        if target.exists() or target.is_symlink():
            if not target.is_dir():
                raise QueueError(
                    f"{target}: exists and is not a directory; restore into a new or empty directory"
                )
            if any(target.iterdir()):
                raise QueueError(f"{target} is not empty; restore into a new or empty directory")
        else:
            target.mkdir(parents=True)
    except PermissionError:
        raise QueueError(
            f"{target}: cannot create or read it (permission denied); choose another --target"
        ) from None
    except OSError as exc:
        raise QueueError(f"{target}: cannot create it ({exc.strerror}); choose another --target") from None


def restore(client: docker.DockerClient, archive: Path, target: Path, image: str = IMAGE) -> RestoreOutcome:
    """Verify `archive`, then restore it into `target` (new or empty) through the engine, as
    root, with numeric owners; setuid/setgid bits are dropped (the outcome names where)."""
    verified = verify_archive(archive)
    check_target(target)
    plan = restore_tar(verified, time.time() - 1)
    with mounted(client, image, target.resolve(), read_only=False) as container:
        write_tar(container, MOUNT, plan.tar)
    return RestoreOutcome(target, verified.manifest, plan.stripped)


# --- what the tasks print ----------------------------------------------------------------


@dataclass(frozen=True)
class BackupOutcome:
    """A written archive, as the queue-backup task reports it."""

    archive: Path
    manifest: Manifest
    exit_code: int = 0

    def text(self) -> str:
        m = self.manifest
        counts = f"{len(m.messages)} message(s), {len(m.entries)} entries"
        return f"wrote {self.archive}: {counts}, checksums in {MANIFEST}"

    def to_json(self) -> dict[str, object]:
        m = self.manifest
        return {
            "archive": str(self.archive),
            "files": len(m.entries),
            "messages": len(m.messages),
            "held_by_backup": m.held_by_backup,
        }


@dataclass(frozen=True)
class RestoreOutcome:
    """A restored archive, as the queue-restore task reports it."""

    target: Path
    manifest: Manifest
    stripped: list[str]
    exit_code: int = 0

    def text(self) -> str:
        held, n = len(self.manifest.held_by_backup), len(self.manifest.messages)
        return "\n".join(
            [
                f"verified and restored {n} message(s) into {self.target}"
                + (f"; {held} held by the backup go to incoming/" if held else "")
            ]
            + [f"dropped setuid/setgid from {path}" for path in self.stripped]
        )

    def to_json(self) -> dict[str, object]:
        m = self.manifest
        return {
            "target": str(self.target),
            "messages": len(m.messages),
            "held_by_backup": m.held_by_backup,
            "stripped": self.stripped,
        }


def default_archive_name() -> Path:
    return Path(time.strftime("smtp-out-queue-%Y%m%dT%H%M%SZ.tar.gz", time.gmtime()))


def source_dir(source: str) -> Path:
    """--source, else $POSTFIX_DIR_ROOT (the variable production's compose file uses)."""
    src = source or os.environ.get("POSTFIX_DIR_ROOT", "")
    if not src:
        raise UsageError("give the queue directory with --source or POSTFIX_DIR_ROOT")
    return Path(src)


#: Counts the message files of the queue mounted at MOUNT (every queue directory that holds mail).
COUNT = f"cd {MOUNT} && find {' '.join(sorted(MESSAGE_DIRS))} -type f 2>/dev/null | wc -l"


def messages_in(client: docker.DockerClient, image: str, folder: Path) -> int:
    """How many messages a queue directory holds, counted as root by the engine."""
    with mounted(client, image, folder, read_only=True, command=COUNT) as container:
        return int(logs(container).split()[-1])
