"""The queue archive format and the rules of restore, on synthetic queues (no Docker)."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from smtp_out.ops.queue.archive import (
    MANIFEST,
    Entry,
    Member,
    QueueError,
    check_queue_path,
    restore_tar,
    verify_archive,
    write_archive,
)
from smtp_out.ops.queue.backup import Snapshot, check_target, cross_check

from ..helpers import crafted_archive, dir_member, file_member

POSTFIX = (101, 103)


def d(path: str, mode: int = 0o700, mtime: float = 1_700_000_000) -> Member:
    return Member(Entry(path, "dir", mode, *POSTFIX, mtime))


def f(path: str, data: bytes, mode: int = 0o700, mtime: float = 1_600_000_000) -> Member:
    return Member(Entry(path, "file", mode, *POSTFIX, mtime), data)


def queue() -> list[Member]:
    return [
        d("maildrop", 0o1730), f("maildrop/M1", b"pickup"),
        d("deferred"), d("deferred/A"), f("deferred/A/A1B2C3", b"queue file one\n" * 100),
        d("defer"), d("defer/A"), f("defer/A/A1B2C3", b"recipient=x@example.com\n", 0o600),
        d("incoming"), d("hold"),
        f("hold/H1", b"held by backup", mtime=2_000_000_000), f("hold/H2", b"held before"),
    ]  # fmt: skip


def extracted(tar: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return {m.name: m for m in t.getmembers()}


def test_round_trip_keeps_owners_modes_times_and_bytes(tmp_path: Path) -> None:
    archive = tmp_path / "q.tar.gz"
    manifest = write_archive(queue(), archive, "/srv/q")
    assert sorted(manifest.messages) == ["deferred/A/A1B2C3", "hold/H1", "hold/H2", "maildrop/M1"]
    verified = verify_archive(archive)
    assert verified.members == [
        Member(Entry(m.entry.path, m.entry.type, m.entry.mode, *POSTFIX, m.entry.mtime, len(m.data),
                     hashlib.sha256(m.data).hexdigest() if m.entry.type == "file" else ""), m.data)
        for m in queue()
    ]  # fmt: skip
    out = extracted(restore_tar(verified).tar)
    assert (out["deferred/A/A1B2C3"].uid, out["deferred/A/A1B2C3"].gid) == POSTFIX
    assert out["deferred/A/A1B2C3"].mode == 0o700 and out["deferred/A/A1B2C3"].mtime == 1_600_000_000
    assert out["maildrop"].mode == 0o1730  # the sticky bit is kept


def test_never_overwrites_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / "q.tar.gz"
    archive.write_bytes(b"precious")
    with pytest.raises(QueueError, match="refusing to overwrite"):
        write_archive(queue(), archive, "/srv/q")
    assert archive.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_messages_held_by_the_backup_are_restored_to_incoming_dated_now(tmp_path: Path) -> None:
    archive = tmp_path / "q.tar.gz"
    write_archive(queue(), archive, "/srv/q", held_by_backup=["H1"])
    plan = restore_tar(verify_archive(archive), now=1_750_000_000)
    out = extracted(plan.tar)
    assert "hold/H1" not in out and out["incoming/H1"].mtime == 1_750_000_000  # not its future retry time
    assert "hold/H2" in out  # held by the operator before the backup: stays held
    assert plan.released == ["H1"]


def test_a_setuid_file_is_restored_without_setuid_or_setgid(tmp_path: Path) -> None:
    archive = crafted_archive(
        tmp_path / "crafted.tar.gz",
        [dir_member("deferred"), file_member("deferred/ABC123", b"#!/bin/sh\n", 0o6755)],
    )
    plan = restore_tar(verify_archive(archive))
    assert extracted(plan.tar)["deferred/ABC123"].mode == 0o755
    assert plan.stripped == ["deferred/ABC123"]


def test_a_device_entry_is_dropped(tmp_path: Path) -> None:
    dev = tarfile.TarInfo("deferred/DEV1")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
    verified = verify_archive(
        crafted_archive(
            tmp_path / "crafted.tar.gz", [dir_member("deferred"), (dev, b""), file_member("deferred/ABC")]
        )
    )
    assert verified.dropped == ["deferred/DEV1"]
    assert "deferred/DEV1" not in extracted(restore_tar(verified).tar)


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (file_member("/etc/passwd"), "leaves the queue directory"),
        (file_member("deferred/../../etc/passwd"), "leaves the queue directory"),
        (file_member("etc/passwd"), "is not in a Postfix queue subdirectory"),
        (file_member("deferred/A/x y;rm"), "is not a queue id"),
    ],
)
def test_names_outside_the_queue_or_not_queue_ids_are_refused(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes], why: str
) -> None:
    with pytest.raises(QueueError, match=f"{why}.*nothing restored"):
        verify_archive(crafted_archive(tmp_path / "crafted.tar.gz", [dir_member("deferred"), member]))


@pytest.mark.parametrize("held", [["../../etc/passwd"], ["NOTHERE"]])
def test_held_queue_ids_must_be_ids_held_in_the_archive(tmp_path: Path, held: list[str]) -> None:
    with pytest.raises(QueueError, match="nothing restored"):
        verify_archive(
            crafted_archive(
                tmp_path / "crafted.tar.gz", [dir_member("hold"), file_member("hold/H1")], held=held
            )
        )


def test_truncated_corrupted_and_tampered_archives_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "q.tar.gz"
    write_archive(queue(), archive, "/srv/q")
    data = archive.read_bytes()
    truncated = tmp_path / "t.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    corrupted = tmp_path / "c.tar.gz"
    corrupted.write_bytes(bytes(flipped))
    raw = bytearray(gzip.decompress(data))
    at = raw.find(b"queue file one")
    raw[at : at + 5] = b"QUEUE"
    tampered = tmp_path / "x.tar.gz"
    tampered.write_bytes(gzip.compress(bytes(raw)))
    for bad, why in ((truncated, r"corrupt or truncated|no MANIFEST"), (corrupted, "nothing restored"),
                     (tampered, "checksum mismatch")):  # fmt: skip
        with pytest.raises(QueueError, match=why):
            verify_archive(bad)


def test_an_archive_without_a_manifest_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tar.gz"
    with tarfile.open(plain, "w:gz") as tar:
        info, _ = dir_member("deferred")
        tar.addfile(info)
    with pytest.raises(QueueError, match=f"no {MANIFEST}"):
        verify_archive(plain)


def test_queue_paths() -> None:
    assert check_queue_path("deferred/A/A1B2C3") is None
    assert check_queue_path("hold/4Y0sLd2tXvz1") is None
    assert check_queue_path("usr/share/zoneinfo/UTC") == "is not in a Postfix queue subdirectory"
    assert check_queue_path("deferred/A/.hidden") == "is not a queue id or hash directory name"


def test_the_cross_check_refuses_a_snapshot_that_missed_afile_member() -> None:
    snap = Snapshot(queue()[:3], {"maildrop/M1", "deferred/A/A1B2C3"})
    with pytest.raises(QueueError, match=r"differs from the queue listing \(\['deferred/A/A1B2C3'\]\)"):
        cross_check(Path("/srv/q"), snap)
    complete = Snapshot(queue(), {m.entry.path for m in queue() if m.entry.type == "file"})
    cross_check(Path("/srv/q"), complete)
    with pytest.raises(QueueError, match=r"held message\(s\) \['GONE'\] missing"):
        cross_check(Path("/srv/q"), complete, frozenset({"H1", "GONE"}))


def test_restore_targets_must_be_new_or_empty_directories(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(QueueError, match="exists and is not a directory"):
        check_target(tmp_path / "file")
    with pytest.raises(QueueError, match="cannot create it"):
        check_target(tmp_path / "file" / "sub")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(QueueError, match="not empty"):
        check_target(tmp_path / "full")
    check_target(tmp_path / "new" / "queue")
    assert (tmp_path / "new" / "queue").is_dir()


def test_postqueue_json_is_parsed_in_one_place() -> None:
    """ops.queue.listing: one object per message, in order; postqueue's own diagnostics (same
    stream through docker exec) and blank lines skipped; anything else refused."""
    from smtp_out.ops.queue import listing

    data = Path(__file__).parent / "data"
    held = listing.parse((data / "queue-hold.jsonl").read_text())
    assert [m["queue_name"] for m in held] == ["deferred", "hold"]
    noisy = (
        "postqueue: warning: dict_nis_init: NIS domain name not set\n\n"
        + (data / "queue-deferred.jsonl").read_text()
    )
    assert [m["queue_id"] for m in listing.parse(noisy)] == [
        m["queue_id"] for m in listing.parse((data / "queue-deferred.jsonl").read_text())
    ]
    assert len(listing.parse(noisy)) == 2
    for bad in ("[1, 2]\n", "Mail queue is empty\n", "{not json\n"):
        with pytest.raises(ValueError, match="line 1 is not a JSON object"):
            listing.parse(bad)


def test_the_move_script_counts_what_is_left_in_every_message_directory() -> None:
    """transfer.MOVE is built from archive.MESSAGE_DIRS (corrupt/ included), under SPOOL."""
    from smtp_out import SPOOL
    from smtp_out.ops.queue.archive import MESSAGE_DIRS
    from smtp_out.ops.queue.transfer import MOVE

    left = next(line for line in MOVE.splitlines() if line.startswith("left=$(find "))
    assert left.split()[1:-6] == [f"{SPOOL}/{d}" for d in sorted(MESSAGE_DIRS)]
    assert f"{SPOOL}/corrupt" in left


def test_config_test_without_an_image_is_one_line_saying_to_build() -> None:
    import docker.errors

    from smtp_out.ops import configtest

    class Images:
        def get(self, ref: str) -> None:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")

    class Client:
        images = Images()

    with pytest.raises(configtest.NoImage) as caught:
        configtest.run(Client())  # type: ignore[arg-type]
    assert str(caught.value) == (
        "no image smtp-out to test: build it first "
        "(invoke build-docker-images, or config-test without --no-build)"
    )
    assert caught.value.exit_code == 1
