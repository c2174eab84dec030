"""Apt pins against what Debian serves now: one apt round trip in a throwaway container."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from smtp_out.ops.pins.drift import PinStatus, check_dockerfiles, parse_pins, update_dockerfiles

from ..helpers import IMAGE_CONTEXT, PINNED_PACKAGES

pytestmark = pytest.mark.docker

REAL = IMAGE_CONTEXT / "Dockerfile"
BOGUS = "2:0.0.0-0"


@dataclass(frozen=True)
class Checked:
    copy: Path  # the real Dockerfile with procps pinned to a version that does not exist
    real: list[PinStatus]
    copied: list[PinStatus]


@pytest.fixture(scope="module")
def checked(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Checked:
    """Both Dockerfiles checked in ONE container run."""
    text = REAL.read_text()
    procps = next(p for p in parse_pins(text, REAL) if p.package == "procps")
    copy = tmp_path_factory.mktemp("pins") / "Dockerfile"
    copy.write_text(text.replace(f"procps={procps.version}", f"procps={BOGUS}"))
    statuses = check_dockerfiles(client, [REAL, copy])
    return Checked(
        copy,
        [s for s in statuses if s.pin.dockerfile == REAL],
        [s for s in statuses if s.pin.dockerfile == copy],
    )


def test_every_pin_of_the_real_dockerfile_resolves(checked: Checked) -> None:
    assert [s.pin.package for s in checked.real] == PINNED_PACKAGES
    unresolved = [
        f"{s.pin.package}={s.pin.version} (served: {s.available})" for s in checked.real if not s.resolves
    ]
    assert unresolved == []
    assert {s.status for s in checked.real} <= {"ok", "outdated"}
    for s in checked.real:
        assert s.candidate is not None and s.candidate in s.available


def test_a_version_debian_does_not_serve_is_missing(checked: Checked) -> None:
    procps = next(s for s in checked.copied if s.pin.package == "procps")
    assert procps.pin.version == BOGUS
    assert procps.status == "missing"
    assert not procps.resolves
    assert procps.candidate is not None
    others = [s.status for s in checked.copied if s.pin.package != "procps"]
    assert others == [s.status for s in checked.real if s.pin.package != "procps"]


def test_update_moves_the_missing_pin_to_the_candidate(checked: Checked) -> None:
    before = checked.copy.read_text()
    real_before = REAL.read_text()
    diffs = update_dockerfiles(checked.copied)
    assert REAL.read_text() == real_before  # only the copy was given, only the copy changes
    expected = before
    for s in checked.copied:
        if s.status != "ok":
            assert s.candidate is not None
            expected = expected.replace(
                f"'{s.pin.package}={s.pin.version}'", f"'{s.pin.package}={s.candidate}'"
            )
    assert checked.copy.read_text() == expected
    procps = next(s for s in checked.copied if s.pin.package == "procps")
    assert list(diffs) == [checked.copy]
    assert f"-    'procps={BOGUS}' \\\n" in diffs[checked.copy]
    assert f"+    'procps={procps.candidate}' \\\n" in diffs[checked.copy]
    after = {p.package: p.version for p in parse_pins(checked.copy.read_text(), checked.copy)}
    assert after["procps"] == procps.candidate
