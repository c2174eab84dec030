"""Queue backup/restore on synthetic queue trees (no Docker)."""

from __future__ import annotations

import gzip
import os
import stat
import time
from pathlib import Path

import pytest

from smtp_out.ops.queue import MANIFEST, QueueError, restore, verify_archive, write_archive


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    root = tmp_path / "spool"
    for d, mode in (("deferred/A", 0o700), ("active", 0o700), ("maildrop", 0o730), ("defer/A", 0o700)):
        (root / d).mkdir(parents=True)
        os.chmod(root / d, mode)
    (root / "deferred" / "A" / "A1B2C3").write_bytes(b"queue file one\n" * 100)
    (root / "defer" / "A" / "A1B2C3").write_bytes(b"recipient=x@example.com\n")
    (root / "maildrop" / "M1").write_bytes(b"pickup")
    os.chmod(root / "deferred" / "A" / "A1B2C3", 0o700)
    os.chown(root / "deferred" / "A" / "A1B2C3", 101, 103)
    os.utime(root / "deferred" / "A" / "A1B2C3", (1_600_000_000, 1_600_000_000))
    (root / "etc").mkdir()
    (root / "etc" / "hosts").write_text("chroot copy, not archived\n")
    return root


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, int, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        data = p.read_bytes() if p.is_file() else b""
        out[p.relative_to(root).as_posix()] = (
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            int(st.st_mtime),
            data,
        )
    return out


def test_round_trip_keeps_owners_modes_times_and_contents(spool: Path, tmp_path: Path) -> None:
    archive = tmp_path / "q.tar.gz"
    manifest = write_archive(spool, archive)
    assert sorted(manifest.messages) == ["deferred/A/A1B2C3", "maildrop/M1"]
    assert all(not e.path.startswith("etc") for e in manifest.entries)
    target = tmp_path / "restored"
    restore(archive, target)
    before = {k: v for k, v in _snapshot(spool).items() if not k.startswith("etc")}
    assert _snapshot(target) == before


def test_never_overwrites_an_archive(spool: Path, tmp_path: Path) -> None:
    archive = tmp_path / "q.tar.gz"
    archive.write_bytes(b"precious")
    with pytest.raises(QueueError, match="refusing to overwrite"):
        write_archive(spool, archive)
    assert archive.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_refuses_a_non_empty_target(spool: Path, tmp_path: Path) -> None:
    archive = tmp_path / "q.tar.gz"
    write_archive(spool, archive)
    target = tmp_path / "t"
    target.mkdir()
    (target / "x").write_text("x")
    with pytest.raises(QueueError, match="not empty"):
        restore(archive, target)


def test_truncated_archive_is_refused_and_nothing_is_written(spool: Path, tmp_path: Path) -> None:
    archive = tmp_path / "q.tar.gz"
    write_archive(spool, archive)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(QueueError, match=r"corrupt or truncated|no MANIFEST"):
        restore(archive, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_corrupted_archive_is_refused(spool: Path, tmp_path: Path) -> None:
    archive = tmp_path / "q.tar.gz"
    write_archive(spool, archive)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(QueueError, match="nothing restored"):
        verify_archive(archive)


def test_tampered_member_fails_the_checksum(spool: Path, tmp_path: Path) -> None:
    archive = tmp_path / "q.tar.gz"
    write_archive(spool, archive)
    raw = bytearray(gzip.decompress(archive.read_bytes()))
    at = raw.find(b"queue file one")
    raw[at : at + 5] = b"QUEUE"
    archive.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(QueueError, match="checksum mismatch"):
        verify_archive(archive)


def test_archive_without_manifest_or_with_foreign_paths_is_refused(tmp_path: Path) -> None:
    import io
    import tarfile

    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../etc/passwd")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(QueueError, match="unsafe or foreign path"):
        verify_archive(archive)
    plain = tmp_path / "plain.tar.gz"
    with tarfile.open(plain, "w:gz") as tar:
        info = tarfile.TarInfo("deferred")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    with pytest.raises(QueueError, match=f"no {MANIFEST}"):
        verify_archive(plain)


def test_messages_held_by_the_backup_are_restored_to_incoming(spool: Path, tmp_path: Path) -> None:
    (spool / "hold").mkdir()
    (spool / "hold" / "H1").write_bytes(b"held by backup")
    (spool / "hold" / "H2").write_bytes(b"held by the operator before")
    (spool / "incoming").mkdir()
    os.utime(spool / "hold" / "H1", (2_000_000_000, 2_000_000_000))  # a retry time in the future
    archive = tmp_path / "q.tar.gz"
    write_archive(spool, archive, held_by_backup=["H1"])
    restore(archive, tmp_path / "t")
    assert (tmp_path / "t" / "incoming" / "H1").read_bytes() == b"held by backup"
    assert (tmp_path / "t" / "incoming" / "H1").stat().st_mtime <= time.time()
    assert (tmp_path / "t" / "hold" / "H2").exists()
