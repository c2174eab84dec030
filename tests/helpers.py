"""What every test suite shares: where the checkout is, and running a task as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The checkout holding these tests (tasks.py, docker-services/, ...).
REPO_ROOT = Path(__file__).resolve().parents[1]
#: The relay image's build context.
IMAGE_CONTEXT = REPO_ROOT / "docker-services" / "smtp-out"
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
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS` from the checkout, as an operator would; returns what it printed."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
