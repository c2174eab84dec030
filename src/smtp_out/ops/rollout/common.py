"""What every rollout task shares: the container lookup, the spool and label names, image
references, private files, the numbered steps every task prints and records, and one outcome.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from ...checks import Report
from ...errors import SmtpOutError
from ...progress import Progress

#: The label that marks the containers the rollout made, and what they are.
ROLE = "smtp-out.rollout"


class RolloutError(SmtpOutError):
    """A rollout step was refused or failed; the message names the step."""


class StepFailed(SmtpOutError):
    """A step of the rollout failed; names it."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived while a rollout ran (a BaseException, like
    KeyboardInterrupt, so that no `except Exception` swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


def repository(ref: str) -> str:
    """'smtp-out', 'smtp-out:latest' or 'registry:5000/smtp-out:1' -> the repository part."""
    last = ref.rsplit("/", 1)[-1]
    return ref[: len(ref) - len(last)] + last.split(":", 1)[0] if ":" in last else ref


def tag_of(ref: str) -> str:
    """The full tag a reference names ('smtp-out' -> 'smtp-out:latest')."""
    return ref if ":" in ref.rsplit("/", 1)[-1] else f"{ref}:latest"


def short(image_id: str) -> str:
    """An image id as docker images shows it."""
    return image_id.removeprefix("sha256:")[:12]


def find_container(client: docker.DockerClient, name: str) -> Container | None:
    """The container named `name`, or None."""
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def running(client: docker.DockerClient, name: str, what: str = "production container") -> Container:
    container = find_container(client, name)
    if container is None:
        raise RolloutError(f"no {what} named {name!r} (docker ps -a lists the containers)")
    if container.status != "running":
        raise RolloutError(f"{what} {name} is {container.status}, not running")
    return container


def point_tag(client: docker.DockerClient, ref: str, image_id: str) -> None:
    """Make the tag `ref` name `image_id`."""
    repo, tag = tag_of(ref).rsplit(":", 1)
    client.images.get(image_id).tag(repo, tag)


def image_id(client: docker.DockerClient, ref: str) -> str | None:
    """The id of the image `ref` names (None: no such image)."""
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


# --- private files: records and archives hold production's environment and mail ------------


def private_dir(folder: Path) -> Path:
    """`folder`, created if need be, readable by its owner only (0700)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    return folder


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path` (0600) atomically: a temporary file renamed into place."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


# --- steps and the outcome ------------------------------------------------------------------


@dataclass
class RolloutOutcome:
    """What a rollout task (deploy-parallel, cutover, rollback) did, step by step, and the
    verdicts it reached."""

    action: str
    steps: list[str] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    failed: str = ""  # "<step>: <reason>", empty when every step passed
    rolled_back_to: str = ""
    rollback_failed: str = ""
    done: str = "done"  # the verdict's words when every step passed
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or not all(r.ok for r in self.reports) else 0

    def text(self) -> str:
        if not self.exit_code:
            verdict = f"{self.action}: {self.done}"
        elif not self.failed:
            verdict = f"{self.action} FAILED: a check failed"
        elif self.rolled_back_to:
            again = (
                f"; and the rollback FAILED too: {self.rollback_failed}"
                if self.rollback_failed
                else ", verified"
            )
            verdict = f"{self.action} FAILED at {self.failed}; rolled back to {self.rolled_back_to}{again}"
        else:
            verdict = f"{self.action} FAILED at {self.failed}"
        return "\n\n".join([*(r.text() for r in self.reports), *self.notes, f"=== {verdict} ==="])

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action, "ok": not self.exit_code, "steps": self.steps, "failed": self.failed,
            "rolled_back_to": self.rolled_back_to, "rollback_failed": self.rollback_failed,
            "notes": self.notes, "reports": [r.to_json() for r in self.reports],
        }  # fmt: skip


class Steps:
    """Numbered steps, printed as they start ("<action> [n/total] what") and recorded in the
    outcome; a step's failure (SmtpOutError, the engine refusing) becomes StepFailed naming it."""

    def __init__(self, out: RolloutOutcome, total: int, progress: Progress) -> None:
        self.out, self.total, self.progress, self.n = out, total, progress, 0

    def line(self, what: str) -> str:
        self.n += 1
        line = f"{self.out.action} [{self.n}/{self.total}] {what}"
        self.out.steps.append(line)
        self.progress(line)
        return line

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.line(what)
        started = time.monotonic()
        try:
            yield
        except StepFailed:
            raise
        except SmtpOutError as exc:
            raise StepFailed(what, str(exc)) from None
        except docker.errors.APIError as exc:
            raise StepFailed(what, f"the engine refused: {exc.explanation or exc}") from None
        self.progress(f"{' ' * len(self.out.action)}   ok ({time.monotonic() - started:.1f}s)")

    def check(self, report: Report, what: str) -> None:
        self.out.reports.append(report)
        if not report.ok:
            names = ", ".join(r.name for r in report.failed)
            raise StepFailed(what, f"{len(report.failed)} check(s) failed: {names}")
