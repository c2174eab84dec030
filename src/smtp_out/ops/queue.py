"""Back up and restore a Postfix queue directory, safely.

An archive is a gzip'd tar of the queue subdirectories (the chroot files are recreated by the
entrypoint on every start) with numeric owners, modes and timestamps, and a manifest of
SHA-256 checksums as its last member. It is written to a temporary name and linked into place
only when complete, so an existing archive is never overwritten. Restore verifies the whole
archive against its manifest before it writes anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from docker.models.containers import Container

from ..engine.containers import exec_text
from ..engine.polling import NotReady, poll
from ..errors import EXIT_USAGE, SmtpOutError, UsageError

MANIFEST = "MANIFEST.json"
FORMAT = "smtp-out-queue/1"
#: Postfix's queue subdirectories (queue_directory/...): the messages and their logs.
QUEUE_DIRS = (
    "maildrop", "incoming", "active", "deferred", "defer", "hold",
    "bounce", "trace", "corrupt", "flush", "saved",
)  # fmt: skip


class QueueError(SmtpOutError):
    """A refused or failed backup/restore; the message says what to do."""


class QueueInUse(QueueError):
    """A running container has the queue mounted and the caller did not ask to hold it."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Entry:
    path: str
    type: str  # "file" or "dir"
    mode: int
    uid: int
    gid: int
    mtime: float
    size: int = 0
    sha256: str = ""


@dataclass
class Manifest:
    created: str
    source: str
    entries: list[Entry] = field(default_factory=list)
    held_by_backup: list[str] = field(default_factory=list)
    format: str = FORMAT

    def to_json(self) -> bytes:
        data = {**self.__dict__, "entries": [e.__dict__ for e in self.entries]}
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise QueueError(f"unknown archive format {data.get('format')!r} (expected {FORMAT})")
            entries = [Entry(**e) for e in data.pop("entries")]
            return cls(**data, entries=entries)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise QueueError(f"unreadable {MANIFEST} ({type(exc).__name__}); nothing restored") from None

    @property
    def messages(self) -> list[str]:
        return [e.path for e in self.entries if e.type == "file" and e.path.split("/")[0] in _MESSAGE_DIRS]


_MESSAGE_DIRS = {"maildrop", "incoming", "active", "deferred", "hold", "corrupt"}


# --- backup ------------------------------------------------------------------------------


def _walk(source: Path) -> Iterator[Path]:
    for name in QUEUE_DIRS:
        top = source / name
        if not top.exists():
            continue
        yield top
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for d in dirs:
                yield Path(root) / d
            for f in sorted(files):
                yield Path(root) / f


def write_archive(source: Path, archive: Path, held_by_backup: list[str] | None = None) -> Manifest:
    """Archive the queue subdirectories of `source` into `archive` (refusing to overwrite)."""
    source = source.resolve()
    if not source.is_dir():
        raise QueueError(
            f"{source}: not a directory (give the queue directory with --source or POSTFIX_DIR_ROOT)"
        )
    if not any((source / d).is_dir() for d in QUEUE_DIRS):
        raise QueueError(f"{source}: no Postfix queue directories (deferred, active, ...) in it")
    if archive.exists():
        raise QueueError(f"{archive} exists; refusing to overwrite it (choose another --archive)")
    archive.parent.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), str(source))
    manifest.held_by_backup = sorted(held_by_backup or [])
    tmp = archive.with_name(f".{archive.name}.partial-{os.getpid()}")
    try:
        with tmp.open("wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for path in _walk(source):
                st = path.lstat()
                rel = path.relative_to(source).as_posix()
                if stat.S_ISDIR(st.st_mode):
                    info = _info(rel, st, tarfile.DIRTYPE)
                    tar.addfile(info)
                    manifest.entries.append(Entry(rel, "dir", info.mode, st.st_uid, st.st_gid, st.st_mtime))
                elif stat.S_ISREG(st.st_mode):
                    data = path.read_bytes()
                    info = _info(rel, st, tarfile.REGTYPE)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                    digest = hashlib.sha256(data).hexdigest()
                    entry = Entry(
                        rel, "file", info.mode, st.st_uid, st.st_gid, st.st_mtime, len(data), digest
                    )
                    manifest.entries.append(entry)
                # sockets and fifos (public/, private/) are recreated by Postfix: not archived
            blob = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(blob), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(blob))
            raw.flush()
            os.fsync(raw.fileno())
        os.link(tmp, archive)  # fails if the archive appeared meanwhile: never overwrite
    except FileExistsError:
        raise QueueError(f"{archive} exists; refusing to overwrite it") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return manifest


def _info(rel: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(rel)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""  # numeric owners only
    info.mtime = int(st.st_mtime)
    return info


# --- containers using the directory ------------------------------------------------------


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
    return [json.loads(ln) for ln in _exec(container, "postqueue -j").splitlines() if ln.startswith("{")]


@contextlib.contextmanager
def held(container: Container, timeout: float = 30.0) -> Iterator[list[str]]:
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
        ours = sorted(m["queue_id"] for m in listing if m["queue_id"] not in already)
        yield ours
    finally:
        listing = queue_listing(container)
        release = [
            m["queue_id"] for m in listing if m.get("queue_name") == "hold" and m["queue_id"] not in already
        ]
        if release:
            _exec(container, f"printf '%s\\n' {' '.join(release)} | postsuper -H - 2>/dev/null")


def backup(
    source: Path,
    archive: Path,
    running: list[Container],
    *,
    hold: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> Manifest:
    """Back up `source`. When running containers have it mounted, refuse unless `hold`; with
    `hold` the queue is held for a consistent snapshot and released afterwards."""
    users = containers_using(running, source)
    if users and not hold:
        names = ", ".join(str(c.name) for c in users)
        raise QueueInUse(
            f"{source} is mounted by running container(s) {names}; pass --hold to hold the queue "
            "(postsuper -h ALL) for a consistent snapshot and release it afterwards, or stop the container"
        )
    if len(users) > 1:
        raise QueueError(f"{source} is mounted by several running containers; stop all but one first")
    if not users:
        return write_archive(source, archive)
    with held(users[0]) as ours:
        progress(f"held {len(ours)} message(s) in {users[0].name} for the snapshot")
        manifest = write_archive(source, archive, ours)
    progress(f"released them in {users[0].name}")
    return manifest


# --- restore -----------------------------------------------------------------------------


def verify_archive(archive: Path) -> Manifest:
    """Read the whole archive and check every member against the manifest; raises QueueError
    (corrupt, truncated, tampered, unsafe paths) without writing anything."""
    if not archive.is_file():
        raise QueueError(f"{archive}: no such archive")
    seen: dict[str, tuple[str, int]] = {}
    manifest: Manifest | None = None
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                _check_member_name(archive, member.name)
                if member.name == MANIFEST:
                    f = tar.extractfile(member)
                    try:
                        manifest = Manifest.from_json(f.read() if f else b"")
                    except QueueError as exc:
                        raise QueueError(f"{archive}: {exc}") from None
                elif member.isfile():
                    f = tar.extractfile(member)
                    data = f.read() if f else b""
                    seen[member.name] = (hashlib.sha256(data).hexdigest(), len(data))
                elif member.isdir():
                    seen[member.name] = ("", 0)
                else:
                    raise QueueError(
                        f"{archive}: unexpected member {member.name!r} (only files and directories)"
                    )
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise QueueError(
            f"{archive}: corrupt or truncated archive ({type(exc).__name__}: {exc}); nothing restored"
        ) from None
    if manifest is None:
        raise QueueError(
            f"{archive}: no {MANIFEST} in it (truncated, or not a queue backup); nothing restored"
        )
    expected = {e.path: (e.sha256, e.size) for e in manifest.entries}
    if set(expected) != set(seen):
        missing = sorted(set(expected) - set(seen))[:3]
        raise QueueError(
            f"{archive}: members do not match the manifest (missing {missing}); nothing restored"
        )
    bad = [p for p, v in expected.items() if seen[p] != v]
    if bad:
        raise QueueError(f"{archive}: checksum mismatch for {bad[:3]}; nothing restored")
    return manifest


def _check_member_name(archive: Path, name: str) -> None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or (name != MANIFEST and p.parts[0] not in QUEUE_DIRS):
        raise QueueError(f"{archive}: unsafe or foreign path {name!r} in archive; nothing restored")


def restore(archive: Path, target: Path) -> Manifest:
    """Verify `archive`, then restore it into `target` (absent or empty) with numeric owners,
    modes and timestamps. Messages the backup put on hold go to incoming/ for delivery."""
    manifest = verify_archive(archive)
    if target.exists() and any(target.iterdir()):
        raise QueueError(f"{target} is not empty; restore into a new or empty directory")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name != MANIFEST]
        tar.extractall(target, members=members, numeric_owner=True, filter="fully_trusted")
    for entry in (e for e in manifest.entries if e.type == "dir"):  # directory times after their files
        os.utime(target / entry.path, (entry.mtime, entry.mtime))
    # A deferred queue file's mtime is its next retry time, and the queue manager skips files
    # dated in the future (and does not rescan incoming/ on its own): date released ones now.
    incoming = target / "incoming"
    now = time.time() - 1
    for queue_id in manifest.held_by_backup:
        held_file = target / "hold" / queue_id
        if held_file.exists():
            incoming.mkdir(mode=0o700, exist_ok=True)
            held_file.rename(incoming / queue_id)
            os.utime(incoming / queue_id, (now, now))
    return manifest


# --- what the tasks print ----------------------------------------------------------------


@dataclass(frozen=True)
class BackupOutcome:
    """A written archive, as the queue-backup task reports it."""

    archive: Path
    manifest: Manifest
    exit_code: int = 0

    def text(self) -> str:
        return (
            f"wrote {self.archive}: {len(self.manifest.messages)} message(s), "
            f"{len(self.manifest.entries)} entries, checksums in {MANIFEST}"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "archive": str(self.archive),
            "files": len(self.manifest.entries),
            "messages": len(self.manifest.messages),
            "held_by_backup": self.manifest.held_by_backup,
        }


@dataclass(frozen=True)
class RestoreOutcome:
    """A restored archive, as the queue-restore task reports it."""

    target: Path
    manifest: Manifest
    exit_code: int = 0

    def text(self) -> str:
        held = len(self.manifest.held_by_backup)
        return f"verified and restored {len(self.manifest.messages)} message(s) into {self.target}" + (
            f"; {held} held by the backup go to incoming/" if held else ""
        )

    def to_json(self) -> dict[str, object]:
        return {
            "target": str(self.target),
            "messages": len(self.manifest.messages),
            "held_by_backup": self.manifest.held_by_backup,
        }


def default_archive_name() -> Path:
    return Path(time.strftime("smtp-out-queue-%Y%m%dT%H%M%SZ.tar.gz", time.gmtime()))


def source_dir(source: str) -> Path:
    """--source, else $POSTFIX_DIR_ROOT (the variable production's compose file uses)."""
    src = source or os.environ.get("POSTFIX_DIR_ROOT", "")
    if not src:
        raise UsageError("give the queue directory with --source or POSTFIX_DIR_ROOT")
    return Path(src)
