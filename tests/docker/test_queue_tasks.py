"""queue-backup and queue-restore for an operator in the docker group who is not root: the
engine reads and writes the queue, nothing is skipped, restore keeps owners and drops what it
must not restore."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smtp_out import mail
from smtp_out.engine.containers import wait_for_exit, wait_for_log
from smtp_out.material import Material
from smtp_out.ops.queue.archive import MESSAGE_DIRS, QUEUE_DIRS

from ..helpers import crafted_archive, dir_member, file_member, invoke
from .conftest import Started
from .support import HOLD

pytestmark = pytest.mark.docker

OPERATOR = "smtp-out-operator"
#: Every queue directory that holds messages, and the copies of a deferred message put there.
PLACED = {
    "maildrop": "M1A2B3",
    "incoming": "I1A2B3",
    "active": "A1A2B3",
    "hold": "H1A2B3",
    "corrupt": "C1A2B3",
}


@pytest.fixture(scope="module")
def operator() -> str:
    """A user in the docker group who is not root (created once; kept, it is harmless)."""
    assert grp.getgrnam("docker"), "the engine's socket group 'docker' is missing"
    try:
        pwd.getpwnam(OPERATOR)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--groups", "docker", OPERATOR], check=True
        )
    return OPERATOR


@pytest.fixture
def workdir(operator: str) -> Iterator[Path]:
    """A folder the operator owns, outside root's private pytest folder."""
    d = Path(f"/tmp/smtp-out-operator-{os.getpid()}")
    d.mkdir(mode=0o755)
    shutil.chown(d, operator)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tree(root: Path) -> dict[str, tuple[int, int, int, int, str]]:
    """Owner, group, mode, mtime and content hash of everything under the queue subdirectories."""
    out = {}
    for top in (root / name for name in QUEUE_DIRS):
        for p in [top, *sorted(top.rglob("*"))] if top.exists() else []:
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            out[p.relative_to(root).as_posix()] = (
                st.st_uid,
                st.st_gid,
                st.st_mode & 0o7777,
                int(st.st_mtime),
                digest,
            )
    return out


@pytest.fixture
def full_queue(smtp_out: Callable[..., Started], material: Material, workdir: Path, operator: str) -> Path:
    """A stopped relay's queue with messages in every queue directory, closed to other users."""
    spool = workdir / "spool"
    spool.mkdir()
    s = smtp_out(spool=spool, env=HOLD)
    for i in range(3):
        mail.submit(s.host, mail.message(f"reader{i}@example.com"), ca=material.ca)
    wait_for_log(s.container, r"status=deferred", 3)
    s.container.stop(timeout=10)
    wait_for_exit(s.container)
    deferred = next(p for p in (spool / "deferred").rglob("*") if p.is_file())
    st = deferred.stat()
    for top, qid in PLACED.items():
        (spool / top).mkdir(exist_ok=True)
        copy = spool / top / qid
        shutil.copy2(deferred, copy)
        os.chown(copy, st.st_uid, st.st_gid)
    assert (spool / "deferred").stat().st_mode & 0o077 == 0, "the queue must be closed to the operator"
    return spool


def test_an_operator_in_the_docker_group_backs_up_every_queue_directory_without_sudo(
    full_queue: Path, workdir: Path, operator: str
) -> None:
    archive = workdir / "q.tar.gz"
    r = invoke(
        "queue-backup", "--source", str(full_queue), "--archive", str(archive), "--json", user=operator
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    on_disk = [p for p in tree(full_queue) if p.split("/")[0] in MESSAGE_DIRS and (full_queue / p).is_file()]
    assert summary["messages"] == len(on_disk) == 3 + len(PLACED)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert set(tree(full_queue)) <= names  # every file and directory, none skipped
    assert Path(archive).stat().st_uid == pwd.getpwnam(operator).pw_uid

    target = workdir / "restored"
    r = invoke("queue-restore", str(archive), "--target", str(target), user=operator)
    assert r.returncode == 0, r.stderr
    assert f"verified and restored {summary['messages']} message(s)" in r.stdout
    assert tree(target) == tree(full_queue)  # owners, modes, times and bytes


def test_restore_drops_setuid_and_refuses_names_that_leave_the_target(workdir: Path, operator: str) -> None:
    setuid = crafted_archive(
        workdir / "setuid.tar.gz",
        [dir_member("deferred"), file_member("deferred/ABC123", b"#!/bin/sh\nid\n", 0o6755)],
    )
    r = invoke("queue-restore", str(setuid), "--target", str(workdir / "t1"), user=operator)
    assert r.returncode == 0, r.stderr
    assert "dropped setuid/setgid from deferred/ABC123" in r.stdout
    st = (workdir / "t1" / "deferred" / "ABC123").stat()
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o755, 101, 103)

    for name, bad in (("abs", "/etc/cron.d/x"), ("dotdot", "deferred/../../x"), ("id", "deferred/A/x;y")):
        crafted = crafted_archive(workdir / f"{name}.tar.gz", [dir_member("deferred"), file_member(bad)])
        target = workdir / f"t-{name}"
        r = invoke("queue-restore", str(crafted), "--target", str(target), user=operator)
        assert r.returncode == 1
        assert (
            len(r.stderr.splitlines()) == 1
            and r.stderr.startswith("ERROR: ")
            and "nothing restored" in r.stderr
        )
        assert not target.exists()


def test_restore_into_a_file_or_an_unwritable_place_is_one_line(workdir: Path, operator: str) -> None:
    archive = crafted_archive(workdir / "ok.tar.gz", [dir_member("deferred"), file_member("deferred/ABC123")])
    (workdir / "afile").write_text("x")
    for target, why in ((workdir / "afile", "exists and is not a directory"),
                        (Path("/root/smtp-out-restore"), "permission denied")):  # fmt: skip
        r = invoke("queue-restore", str(archive), "--target", str(target), user=operator)
        assert r.returncode == 1, r.stdout
        assert r.stderr.splitlines() == [r.stderr.strip()] and why in r.stderr and "Traceback" not in r.stderr
    assert not Path("/root/smtp-out-restore").exists()
