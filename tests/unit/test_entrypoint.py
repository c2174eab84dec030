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


def test_mynetworks_entries_must_be_addresses_or_networks() -> None:
    good = ["127.0.0.0/8", "10.5.5.100", "172.16.0.0/12", "[::1]/128", "[fd00::]/8"]
    bad = ["bogus", "app.internal", "10.5.5.1/24", "256.0.0.0/8", "10.0.0.0/33", "::1", "10.0.0.0/8;x"]
    script = "; ".join(f"is_network '{e}' && echo 'yes {e}' || echo 'no {e}'" for e in good + bad)
    r = _bash(script)
    assert r.stdout.split("\n")[:-1] == [f"yes {e}" for e in good] + [f"no {e}" for e in bad]


def test_time_zones_are_names_of_zone_files_only() -> None:
    zones = "UTC Europe/Berlin ../../../etc/passwd /etc/passwd 'UTC;id' Mars/Olympus"
    r = _bash(f'for z in {zones}; do is_zone_name "$z" && echo yes || echo no; done')
    assert r.stdout.split() == ["yes", "yes", "no", "no", "no", "no"]


def test_a_postfix_value_with_a_line_break_is_refused_naming_the_variable() -> None:
    r = _bash(
        "export POSTFIX_notify_classes=$'bounce\\nsmtpd_recipient_restrictions = permit'; check_environment"
    )
    assert r.returncode == 1
    assert r.stderr.startswith("[smtp-out] ERROR: POSTFIX_notify_classes: the value contains a line break")
