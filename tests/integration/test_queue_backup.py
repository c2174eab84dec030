"""Queue backup and restore, for real: deferred mail survives a backup/restore onto a new queue."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from smtp_out.engine.containers import exec_text, wait_for_log
from smtp_out.testing.network import TestNet

from ..helpers import invoke

pytestmark = pytest.mark.docker


def invoke_(*args: str) -> subprocess.CompletedProcess[str]:
    """The queue tasks with POSTFIX_DIR_ROOT unset, so only the options name the queue."""
    return invoke(*args, env={"POSTFIX_DIR_ROOT": ""})


def test_deferred_mail_round_trips_through_backup_and_restore(net: TestNet, tmp_path: Path) -> None:
    net.sink_down()
    r = net.submit(["a@example.com", "b@outlook.com", "c@example.net"], count=5)
    assert r.codes == [250] * 5
    wait_for_log(net.relay, r"status=deferred", 5)
    assert net.spool is not None
    source = net.spool
    archive = tmp_path / "queue.tar.gz"

    refused = invoke_("queue-backup", "--source", str(source), "--archive", str(archive))
    assert refused.returncode == 2
    assert "--hold" in refused.stderr and str(net.relay.name) in refused.stderr
    assert not archive.exists()

    done = invoke_("queue-backup", "--source", str(source), "--archive", str(archive), "--hold", "--json")
    assert done.returncode == 0, done.stderr
    assert '"messages": 5' in done.stdout
    listing = net.queue_ids()
    assert len(listing) == 5  # released: still queued in the source container, none on hold
    _, held = exec_text(net.relay, 'postqueue -j | grep -c \'"queue_name": "hold"\'')
    assert held.strip() == "0"

    again = invoke_("queue-backup", "--source", str(source), "--archive", str(archive), "--hold")
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr

    net.remove_smtp_out()
    target = tmp_path / "restored"
    restored = invoke_("queue-restore", str(archive), "--target", str(target))
    assert restored.returncode == 0, restored.stderr
    assert (target / "deferred").stat().st_uid == (source / "deferred").stat().st_uid

    net.sink_up()
    net.start_smtp_out(spool=target)
    try:
        net.wait_for_received(5, timeout=60)
    except TimeoutError:
        print(
            exec_text(
                net.relay, "postqueue -p; find /var/spool/postfix -path '*/hold/*' -o -path '*/incoming/*'"
            )[1]
        )
        print(restored.stdout, done.stdout)
        raise
    seqs = sorted(m.header_seq for m in net.received() if m.header_seq is not None)
    assert seqs == [0, 1, 2, 3, 4]

    busy = invoke_("queue-restore", str(archive), "--target", str(target))
    assert busy.returncode == 1 and "not empty" in busy.stderr


def test_corrupted_and_truncated_archives_are_refused_with_a_clear_message(
    net: TestNet, tmp_path: Path
) -> None:
    net.sink_down()
    assert net.submit("a@example.com", count=2).codes == [250, 250]
    assert net.spool is not None
    archive = tmp_path / "q.tar.gz"
    assert (
        invoke_("queue-backup", "--source", str(net.spool), "--archive", str(archive), "--hold").returncode
        == 0
    )
    data = archive.read_bytes()

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    corrupted = tmp_path / "corrupted.tar.gz"
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x55
    corrupted.write_bytes(bytes(flipped))
    for bad in (truncated, corrupted):
        out = invoke_("queue-restore", str(bad), "--target", str(tmp_path / f"t-{bad.stem}"))
        assert out.returncode == 1
        assert out.stderr.startswith("ERROR: ") and "nothing restored" in out.stderr
        assert "Traceback" not in out.stderr
        assert not (tmp_path / f"t-{bad.stem}").exists()
