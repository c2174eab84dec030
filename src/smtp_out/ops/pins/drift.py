"""Apt version pins in the Dockerfiles: find them, ask Debian which versions it serves now, move them.

A pin is a `name=version` argument of `apt-get install` (or `apt install`) inside a RUN
instruction. `parse_pins` finds them, `check_dockerfiles` asks apt in ONE throwaway container
from the base image which versions exist and which one apt would pick (the candidate), and
`update_dockerfiles` rewrites the pins that no longer match the candidate, changing nothing
else in the file.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import docker
import docker.errors

from ... import project
from ...errors import SmtpOutError
from .apt import available_versions
from .dockerfile_words import find_pins

DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
Status = Literal["ok", "outdated", "missing"]


@dataclass(frozen=True)
class Pin:
    """One `package=version` argument of an apt install, at a 1-based line of a Dockerfile."""

    package: str
    version: str
    dockerfile: Path
    line: int


def parse_pins(text: str, dockerfile: Path) -> list[Pin]:
    """Every `name=version` argument of apt-get/apt install in the RUN instructions of `text`."""
    return [Pin(f.package, f.version, dockerfile, f.line) for f in find_pins(text)]


def rewrite_pins(text: str, new_versions: Mapping[str, str]) -> str:
    """`text` with the version of every pin of a package in `new_versions` replaced; quoting,
    indentation, comments and everything else stay byte-identical."""
    out = text
    for f in sorted(find_pins(text), key=lambda f: f.start, reverse=True):
        new = new_versions.get(f.package)
        if new is None or new == f.version:
            continue
        if not f.contiguous:
            raise ValueError(
                f"line {f.line}: cannot rewrite {f.package}={f.version}: "
                "its version is split by quotes or escapes"
            )
        out = out[: f.start] + new + out[f.start + len(f.version) :]
    return out


# -- what apt serves ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinStatus:
    """A pin and what apt in the base image knows about its package right now."""

    pin: Pin
    available: list[str]
    candidate: str | None

    @property
    def resolves(self) -> bool:
        """The pinned version can be installed: apt still serves it."""
        return self.pin.version in self.available

    @property
    def status(self) -> Status:
        """ok: pinned version is the candidate; outdated: still served, but apt would pick
        another; missing: no longer served (the image build fails)."""
        if not self.resolves:
            return "missing"
        return "ok" if self.candidate == self.pin.version else "outdated"


def check_dockerfiles(
    client: docker.DockerClient, dockerfiles: list[Path], base_image: str = DEFAULT_BASE_IMAGE
) -> list[PinStatus]:
    """Every pin of every Dockerfile with what apt in `base_image` serves (one container run)."""
    found = [pin for path in dockerfiles for pin in parse_pins(_read(path), path)]
    apt = available_versions(client, base_image, [p.package for p in found])
    return [PinStatus(p, list(apt[p.package][0]), apt[p.package][1]) for p in found]


# -- reports and updates ------------------------------------------------------------------------------


def render_table(statuses: Sequence[PinStatus]) -> str:
    """An aligned table per Dockerfile (package, pinned, available = the candidate, status) and a summary."""
    header = ("package", "pinned", "available", "status")
    rows = [(s.pin.package, s.pin.version, s.candidate or "-", s.status) for s in statuses]
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(3)]

    def fmt(row: tuple[str, str, str, str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]

    lines: list[str] = []
    current: Path | None = None
    for s, row in zip(statuses, rows, strict=True):
        if s.pin.dockerfile != current:
            current = s.pin.dockerfile
            lines += [*([""] if lines else []), project.shown(current), fmt(header)]
        lines.append(fmt(row))
    counts = {k: sum(s.status == k for s in statuses) for k in ("ok", "outdated", "missing")}
    summary = f"{len(statuses)} pins: " + ", ".join(f"{n} {k}" for k, n in counts.items())
    return "\n".join([*lines, *([""] if lines else []), summary])


def render_json(statuses: Sequence[PinStatus], diffs: Mapping[Path, str] | None = None) -> str:
    """The statuses (and the diffs of an update, when given) as JSON."""
    doc: dict[str, object] = {
        "resolves": all(s.resolves for s in statuses),
        "pins": [
            {
                "dockerfile": project.shown(s.pin.dockerfile),
                "line": s.pin.line,
                "package": s.pin.package,
                "pinned": s.pin.version,
                "candidate": s.candidate,
                "available": s.available,
                "status": s.status,
                "resolves": s.resolves,
            }
            for s in statuses
        ],
    }
    if diffs is not None:
        doc["diffs"] = {project.shown(path): diff for path, diff in diffs.items()}
    return json.dumps(doc, indent=2)


def _read(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as f:
        return f.read()


def update_dockerfiles(statuses: Sequence[PinStatus]) -> dict[Path, str]:
    """Move every pin that is not ok to its candidate, in place; returns a unified diff per
    changed Dockerfile. Pins without a candidate are left as they are."""
    moves: dict[Path, dict[str, str]] = {}
    for s in statuses:
        if s.status != "ok" and s.candidate is not None:
            moves.setdefault(s.pin.dockerfile, {})[s.pin.package] = s.candidate
    diffs: dict[Path, str] = {}
    for path, new_versions in moves.items():
        old = _read(path)
        new = rewrite_pins(old, new_versions)
        if new == old:
            continue
        with path.open("w", encoding="utf-8", newline="") as f:
            f.write(new)
        name = project.shown(path)
        diffs[path] = "".join(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )
    return diffs


class RewriteFailed(SmtpOutError):
    """A Dockerfile could not be rewritten (unreadable, or a pin split by quotes)."""


@dataclass(frozen=True)
class PinsOutcome:
    """The pins task's result: every pin's status and, after --update, the diff per Dockerfile."""

    statuses: list[PinStatus]
    diffs: dict[Path, str] | None = None  # None: nothing was to be rewritten (no --update)

    @property
    def stuck(self) -> list[PinStatus]:
        """Pins that are not ok and have no candidate to move to."""
        return [s for s in self.statuses if s.status != "ok" and s.candidate is None]

    @property
    def exit_code(self) -> int:
        if self.diffs is None:
            return 0 if all(s.resolves for s in self.statuses) else 1
        return 1 if self.stuck else 0

    def text(self) -> str:
        parts = [render_table(self.statuses)]
        if self.diffs is not None:
            parts += ["\n" + diff.rstrip("\n") for diff in self.diffs.values()]
            moved = sum(s.status != "ok" and s.candidate is not None for s in self.statuses)
            parts.append(
                f"\nmoved {moved} pins in {len(self.diffs)} Dockerfiles"
                if self.diffs
                else "\nevery pin is current"
            )
        parts += [
            f"ERROR: {s.pin.package} (line {s.pin.line}): apt has no candidate to move to" for s in self.stuck
        ]
        return "\n".join(parts)

    def to_json(self) -> object:
        return json.loads(render_json(self.statuses, self.diffs))


def check(client: docker.DockerClient, dockerfiles: list[Path], *, update: bool = False) -> PinsOutcome:
    """Check every pin of `dockerfiles` against apt (one container run) and, with `update`,
    move the pins that are not ok to their candidates."""
    statuses = check_dockerfiles(client, dockerfiles)
    if not update:
        return PinsOutcome(statuses)
    try:
        return PinsOutcome(statuses, update_dockerfiles(statuses))
    except (OSError, ValueError) as exc:
        raise RewriteFailed(f"rewriting the pins failed: {exc}") from None
