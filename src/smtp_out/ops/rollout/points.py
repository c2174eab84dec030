"""Rollback points: the image production ran, kept under a tag of its own, and a record of the
production container's full configuration, the compose service behind it and the queue backup
taken at the same moment. Kept in the compose project's directory, under .tmp/smtp-out-rollout/.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from ...errors import SmtpOutError
from .common import point_tag, private_dir, repository, write_private
from .compose import ComposeService

STATE = Path(".tmp") / "smtp-out-rollout"


class NoRollbackPoint(SmtpOutError):
    """There is no rollback point to go back to."""


def state_dir(service: ComposeService) -> Path:
    """The compose project's rollout folder: rollback points, queue backups, the journal (0700)."""
    return service.working_dir / STATE


@dataclass(frozen=True)
class RollbackPoint:
    name: str  # rollback-<UTC time>: also the image tag's name
    tag: str  # <repo>:rollback-<UTC time>
    image_id: str
    image_ref: str  # what the compose file names (smtp-out)
    created: str
    production: str
    project: str
    service: str
    working_dir: str
    config_files: list[str]
    container: dict[str, Any]  # docker inspect of production at that moment (Config, HostConfig, networks)
    queue_backup: str = ""

    @property
    def compose(self) -> ComposeService:
        return ComposeService(self.project, self.service, Path(self.working_dir), tuple(self.config_files))

    def path(self, folder: Path) -> Path:
        return folder / f"{self.name}.json"


def record(client: docker.DockerClient, production: Container, service: ComposeService) -> RollbackPoint:
    """Tag the image `production` runs as <repo>:rollback-<UTC time> and write the record."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if (state_dir(service) / f"rollback-{stamp}.json").exists():  # two in one second: the next one
        time.sleep(1.0)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    attrs = production.attrs
    ref = str(attrs["Config"]["Image"])
    point = RollbackPoint(
        name=f"rollback-{stamp}",
        tag=f"{repository(ref)}:rollback-{stamp}",
        image_id=str(attrs["Image"]),
        image_ref=ref,
        created=stamp,
        production=attrs["Name"].lstrip("/"),
        project=service.project,
        service=service.service,
        working_dir=str(service.working_dir),
        config_files=list(service.config_files),
        container={k: attrs[k] for k in ("Config", "HostConfig", "Mounts", "Name", "Id") if k in attrs}
        | {"NetworkSettings": {"Networks": attrs["NetworkSettings"]["Networks"]}, "Image": attrs["Image"]},
    )
    point_tag(client, point.tag, point.image_id)
    save(point, state_dir(service))
    return point


def save(point: RollbackPoint, folder: Path) -> Path:
    """Write the record (production's environment: 0600 in a 0700 folder)."""
    private_dir(folder)
    return write_private(point.path(folder), json.dumps(asdict(point), indent=1, sort_keys=True) + "\n")


def points(folder: Path) -> list[RollbackPoint]:
    """Every recorded rollback point, newest first."""
    found = [RollbackPoint(**json.loads(p.read_text())) for p in sorted(folder.glob("rollback-*.json"))]
    return sorted(found, key=lambda p: p.created, reverse=True)


def find(folder: Path, name: str = "") -> RollbackPoint:
    """The named rollback point (rollback-<time>), or the newest one."""
    known = points(folder)
    if not known:
        raise NoRollbackPoint(f"no rollback point in {folder} (a cutover records one)")
    if not name:
        return known[0]
    for p in known:
        if name in (p.name, p.tag):
            return p
    raise NoRollbackPoint(
        f"no rollback point {name!r} in {folder}; known: {', '.join(p.name for p in known)}"
    )


def forget(client: docker.DockerClient, point: RollbackPoint, folder: Path) -> None:
    """Remove a rollback point: its tag (the image goes once nothing uses it), record and backup."""
    try:
        client.images.remove(point.tag)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: still used by a container: keep the image, drop the record
            raise
    point.path(folder).unlink(missing_ok=True)
    if point.queue_backup:
        Path(point.queue_backup).unlink(missing_ok=True)
