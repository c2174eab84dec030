"""The queue archive: a gzip'd tar of Postfix's queue subdirectories with a manifest.

Members keep numeric owners, modes and times; MANIFEST.json (the last member) lists every
file and directory with its SHA-256. An archive is written to a temporary name and linked into
place only when complete, so an existing archive is never overwritten. Verification reads the
archive once, into memory, and checks every member against the manifest; restore then writes
only those verified bytes (`restore_tar`), never a second read of the file.

What restore accepts: names inside the queue subdirectories only (no absolute names, no `..`),
made of queue-id characters; regular files and directories only (a device, fifo or link is
dropped and reported); setuid and setgid bits are dropped; the queue ids the manifest says the
backup held must be queue ids, held in the archive.

Size (~310 lines): the format, its verification and the restore plan are one contract and
change together.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ...errors import SmtpOutError

MANIFEST = "MANIFEST.json"
FORMAT = "smtp-out-queue/1"
#: Postfix's queue subdirectories (queue_directory/...): the messages and their logs. The chroot
#: files (etc/, usr/) are recreated by the entrypoint; public/ and private/ hold sockets.
QUEUE_DIRS = (
    "maildrop", "incoming", "active", "deferred", "defer", "hold",
    "bounce", "trace", "corrupt", "flush", "saved",
)  # fmt: skip
#: The subdirectories whose files are messages (the others hold per-message logs).
MESSAGE_DIRS = frozenset({"maildrop", "incoming", "active", "deferred", "hold", "corrupt"})
#: A queue id, or a hash-directory name (Postfix's short ids are hex, long ids base-52 with 'z').
QUEUE_NAME = re.compile(r"[0-9A-Za-z]{1,32}")
#: The mode bits restore keeps: permissions and the sticky bit, never setuid or setgid.
KEPT_MODE_BITS = 0o1777


class QueueError(SmtpOutError):
    """A refused or failed backup/restore; the message says what to do."""


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


@dataclass(frozen=True)
class Member:
    """One file or directory of a queue, with its bytes (b"" for a directory)."""

    entry: Entry
    data: bytes = b""


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
        """The paths of the message files (not the per-message logs)."""
        return [e.path for e in self.entries if e.type == "file" and e.path.split("/")[0] in MESSAGE_DIRS]


def queue_id(path: str) -> str:
    """The queue id a queue file's path names (its last part)."""
    return path.rsplit("/", 1)[-1]


def check_queue_path(path: str) -> str | None:
    """Why `path` is not a name inside the queue subdirectories, or None when it is."""
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts:
        return "leaves the queue directory"
    if not p.parts or p.parts[0] not in QUEUE_DIRS:
        return "is not in a Postfix queue subdirectory"
    if not all(QUEUE_NAME.fullmatch(part) for part in p.parts[1:]):
        return "is not a queue id or hash directory name"
    return None


# --- writing -----------------------------------------------------------------------------


def write_archive(
    members: Iterable[Member], archive: Path, source: str, held_by_backup: Iterable[str] = ()
) -> Manifest:
    """Write `members` and their manifest into `archive` (refusing to overwrite it)."""
    if archive.exists():
        raise QueueError(f"{archive} exists; refusing to overwrite it (choose another --archive)")
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QueueError(f"{archive.parent}: cannot create it ({exc.strerror})") from None
    manifest = Manifest(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), source)
    manifest.held_by_backup = sorted(held_by_backup)
    tmp = archive.with_name(f".{archive.name}.partial-{os.getpid()}")
    try:
        # the archive holds mail: readable by its owner only, whatever the umask
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for member in members:
                e = member.entry
                if e.type == "file":
                    e = Entry(e.path, "file", e.mode, e.uid, e.gid, e.mtime, len(member.data),
                              hashlib.sha256(member.data).hexdigest())  # fmt: skip
                tar.addfile(_tarinfo(e), io.BytesIO(member.data) if e.type == "file" else None)
                manifest.entries.append(e)
            blob = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(blob), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(blob))
            raw.flush()
            os.fsync(raw.fileno())
        os.link(tmp, archive)  # fails if the archive appeared meanwhile: never overwrite
    except FileExistsError:
        raise QueueError(f"{archive} exists; refusing to overwrite it") from None
    except OSError as exc:
        raise QueueError(f"{archive}: cannot write it ({exc.strerror})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return manifest


def _tarinfo(
    e: Entry, *, name: str | None = None, mode: int | None = None, mtime: float | None = None
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name or e.path)
    info.type = tarfile.REGTYPE if e.type == "file" else tarfile.DIRTYPE
    info.mode = e.mode if mode is None else mode
    info.uid, info.gid = e.uid, e.gid
    info.uname = info.gname = ""  # numeric owners only
    info.mtime = int(e.mtime if mtime is None else mtime)
    info.size = e.size if e.type == "file" else 0
    return info


# --- verifying ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """An archive whose every member matched its manifest, with the bytes that were checked."""

    manifest: Manifest
    members: list[Member]
    dropped: list[str]  # members that are neither files nor directories: not restored


def verify_archive(archive: Path) -> Verified:
    """Read `archive` once and verify it (see `verify_bytes`)."""
    try:
        data = archive.read_bytes()
    except FileNotFoundError:
        raise QueueError(f"{archive}: no such archive") from None
    except IsADirectoryError:
        raise QueueError(f"{archive}: is a directory, not an archive") from None
    except OSError as exc:
        raise QueueError(f"{archive}: cannot read it ({exc.strerror})") from None
    return verify_bytes(str(archive), data)


def verify_bytes(name: str, data: bytes) -> Verified:
    """Check every member against the manifest; raises QueueError (corrupt, truncated,
    tampered, unsafe names, bad queue ids) and writes nothing."""
    files: dict[str, bytes] = {}
    dirs: list[str] = []
    dropped: list[str] = []
    manifest: Manifest | None = None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                if member.name == MANIFEST:
                    f = tar.extractfile(member)
                    try:
                        manifest = Manifest.from_json(f.read() if f else b"")
                    except QueueError as exc:
                        raise QueueError(f"{name}: {exc}") from None
                    continue
                if why := check_queue_path(member.name):
                    raise QueueError(f"{name}: member {member.name!r} {why}; nothing restored")
                if member.isfile():
                    f = tar.extractfile(member)
                    files[member.name] = f.read() if f else b""
                elif member.isdir():
                    dirs.append(member.name)
                else:
                    dropped.append(member.name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise QueueError(
            f"{name}: corrupt or truncated archive ({type(exc).__name__}: {exc}); nothing restored"
        ) from None
    if manifest is None:
        raise QueueError(f"{name}: no {MANIFEST} in it (truncated, or not a queue backup); nothing restored")
    return Verified(manifest, _matched(name, manifest, files, dirs), dropped)


def _matched(name: str, manifest: Manifest, files: dict[str, bytes], dirs: list[str]) -> list[Member]:
    """The manifest's entries with their verified bytes, or QueueError on any difference."""
    for entry in manifest.entries:
        if why := check_queue_path(entry.path):
            raise QueueError(f"{name}: manifest entry {entry.path!r} {why}; nothing restored")
    expected = {e.path for e in manifest.entries}
    seen = set(files) | set(dirs)
    if expected != seen:
        odd = sorted(expected ^ seen)[:3]
        raise QueueError(f"{name}: members do not match the manifest ({odd}); nothing restored")
    bad = [
        e.path
        for e in manifest.entries
        if e.type == "file" and hashlib.sha256(files[e.path]).hexdigest() != e.sha256
    ]
    if bad:
        raise QueueError(f"{name}: checksum mismatch for {bad[:3]}; nothing restored")
    held_files = {queue_id(p) for p in files if p.startswith("hold/")}
    for qid in manifest.held_by_backup:
        if not QUEUE_NAME.fullmatch(qid):
            raise QueueError(f"{name}: {qid!r} in the manifest is not a queue id; nothing restored")
        if qid not in held_files:
            raise QueueError(
                f"{name}: the manifest says the backup held {qid}, which is not in hold/; nothing restored"
            )
    return [Member(e, files.get(e.path, b"")) for e in manifest.entries]


# --- restoring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RestorePlan:
    """The tar that restore extracts (as root, through the engine), and what it changed."""

    tar: bytes
    stripped: list[str]  # paths whose setuid/setgid bits were dropped
    released: list[str]  # queue ids the backup held, restored to incoming/ for delivery


def restore_tar(verified: Verified, now: float | None = None) -> RestorePlan:
    """An uncompressed tar of the verified members: numeric owners, modes without setuid or
    setgid, times as archived. Messages the backup put on hold go to incoming/ dated `now`:
    a queue file's mtime is its next retry time, and the queue manager skips files dated in
    the future (and does not rescan incoming/ on its own)."""
    now = time.time() - 1 if now is None else now
    held = {f"hold/{qid}": qid for qid in verified.manifest.held_by_backup}
    stripped: list[str] = []
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if held and not any(m.entry.path == "incoming" for m in verified.members):
            tar.addfile(
                _tarinfo(Entry("incoming", "dir", 0o700, _owner(verified)[0], _owner(verified)[1], now))
            )
        for m in verified.members:
            e = m.entry
            mode = stat.S_IMODE(e.mode) & KEPT_MODE_BITS
            if mode != stat.S_IMODE(e.mode):
                stripped.append(e.path)
            if e.path in held:
                info = _tarinfo(e, name=f"incoming/{held[e.path]}", mode=mode, mtime=now)
            else:
                info = _tarinfo(e, mode=mode)
            tar.addfile(info, io.BytesIO(m.data) if e.type == "file" else None)
    return RestorePlan(buf.getvalue(), stripped, sorted(held.values()))


def _owner(verified: Verified) -> tuple[int, int]:
    """The owner of the queue's deferred/ (Postfix's user), for a directory restore must create."""
    for m in verified.members:
        if m.entry.path == "deferred":
            return m.entry.uid, m.entry.gid
    return 0, 0
