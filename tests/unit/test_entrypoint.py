"""The entrypoint's pure functions, sourced into bash on the host (no Docker)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..helpers import IMAGE_CONTEXT

ENTRYPOINT = IMAGE_CONTEXT / "entrypoint.sh"


def _bash(snippet: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"source {ENTRYPOINT}; {snippet}"], capture_output=True, text=True, check=False
    )


def test_read_override_joins_continuations_and_drops_comments(tmp_path: Path) -> None:
    f = tmp_path / "o"
    f.write_text("# c\nmyhostname = a.example\n\nmynetworks = 127.0.0.0/8,\n   10.0.0.0/8\n  # x\nempty =\n")
    r = _bash(f"read_override {f}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["myhostname=a.example", "mynetworks=127.0.0.0/8, 10.0.0.0/8", "empty="]


def test_read_override_names_the_file_and_line_of_a_broken_line(tmp_path: Path) -> None:
    f = tmp_path / "o"
    f.write_text("a = 1\nthis is wrong\n")
    r = _bash(f"read_override {f}")
    assert r.returncode == 1
    assert (
        r.stderr.strip() == f"[smtp-out] ERROR: {f} line 2: expected 'parameter = value', got: this is wrong"
    )


def test_the_shipped_override_parses() -> None:
    r = _bash(f"read_override {IMAGE_CONTEXT}/etc/postfix/main.cf.override")
    assert r.returncode == 0, r.stderr
    names = [line.split("=", 1)[0] for line in r.stdout.splitlines()]
    assert "myhostname" in names and "ms-throttle_destination_rate_delay" in names
    assert len(names) == len(set(names))
