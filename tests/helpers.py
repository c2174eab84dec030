"""What every test suite shares: where the checkout is, and running a task as a user would."""

from __future__ import annotations

import hashlib
import io
import json
import os
import site
import subprocess
import sys
import tarfile
from pathlib import Path

#: The checkout holding these tests (tasks.py, docker-services/, ...).
REPO_ROOT = Path(__file__).resolve().parents[1]
#: The relay image's build context.
IMAGE_CONTEXT = REPO_ROOT / "docker-services" / "smtp-out"
#: The interpreter another user runs the tasks with (same minor version as the test run's).
SYSTEM_PYTHON = "/usr/bin/python3"
#: The packages the relay's Dockerfile pins, in order.
PINNED_PACKAGES = [
    "postfix",
    "opendkim",
    "ca-certificates",
    "busybox",
    "bind9-dnsutils",
    "procps",
    "net-tools",
]


def invoke(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS` from the checkout, as an operator would (as `user`, through runuser,
    when given); returns what it printed."""
    environ = {**os.environ, **(env or {})}
    python = [sys.executable]
    if user is not None:
        # This interpreter may live where other users cannot run it (pyenv under /root): the user
        # runs the system's Python 3.11 on this environment's packages, as their own venv would.
        python = ["runuser", "-u", user, "--", SYSTEM_PYTHON]
        environ["HOME"] = "/tmp"
        environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), *site.getsitepackages()])
    return subprocess.run(
        [*python, "-m", "invoke", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
        check=False,
    )


# --- crafted queue archives --------------------------------------------------------------

POSTFIX_IDS = (101, 103)


def file_member(name: str, data: bytes = b"x", mode: int = 0o700) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, (info.uid, info.gid), info.mtime = len(data), mode, POSTFIX_IDS, 1_600_000_000
    return info, data


def dir_member(name: str, mode: int = 0o700) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, (info.uid, info.gid), info.mtime = tarfile.DIRTYPE, mode, POSTFIX_IDS, 1_600_000_000
    return info, b""


def crafted_archive(
    path: Path, members: list[tuple[tarfile.TarInfo, bytes]], held: list[str] | None = None
) -> Path:
    """A queue archive with a manifest that matches its members exactly, so that only the rules
    of restore can refuse it (device entries are left out of the manifest, as a backup would)."""
    entries = []
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
            if info.isfile() or info.isdir():
                entries.append({
                    "path": info.name, "type": "file" if info.isfile() else "dir", "mode": info.mode,
                    "uid": info.uid, "gid": info.gid, "mtime": info.mtime, "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest() if info.isfile() else "",
                })  # fmt: skip
        blob = json.dumps({"format": "smtp-out-queue/1", "created": "x", "source": "x", "entries": entries,
                           "held_by_backup": held or []}).encode()  # fmt: skip
        info = tarfile.TarInfo("MANIFEST.json")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    return path
