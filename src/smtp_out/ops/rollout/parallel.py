"""deploy-parallel (the spec's Phase 2): a new image beside production, checked at every step.

The parallel container is production's configuration, read from the running production
container through the SDK (mounted keys and certificates, environment, networks and DNS,
logging, restart policy), with only what must differ changed: its name and hostname, a fresh
queue directory, 127.0.0.1:<port> instead of production's port, its own network alias instead of
production's (the app must never reach it by production's name), no fixed address, and no
compose labels (compose must not take it for production). Production's container is only read.

The image under test is tagged <repo>:candidate. When the tag production's compose file names
(say smtp-out) was moved by a build, it is put back on the image production runs, so that a
`docker-compose up -d` during the burn-in leaves production as it is; the cutover moves it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from ... import SPOOL
from ...engine.config import COMPOSE_PREFIX, ContainerConfig, Network, mounted_at
from ...engine.containers import wait_for_health
from ...engine.polling import NotReady
from ...errors import UsageError
from ...progress import Progress
from .. import canary, smoke
from ..queue.backup import messages_in
from ..queue.relay import drain, quiesce
from .common import (
    ROLE,
    RolloutError,
    RolloutOutcome,
    Steps,
    image_id,
    point_tag,
    repository,
    running,
    short,
    tag_of,
    write_private,
)
from .compose import ComposeError, ComposeService
from .points import state_dir

#: Parallel queue directories deploy-parallel made, in the rollout folder (cleanup reads it).
QUEUES = "parallel-queues.json"


def validate(*, name: str, host: str, port: int, health_timeout: float) -> None:
    """The inputs, checked before anything is touched."""
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port (1-65535)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--host {host!r} is not an IP address") from None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UsageError(f"--name {name!r} is not a container name ([A-Za-z0-9][A-Za-z0-9_.-]*)")
    if health_timeout <= 0:
        raise UsageError("the health timeout must be positive")


def remember_queue(folder: Path, queue: Path) -> None:
    path = folder / QUEUES
    known = json.loads(path.read_text()) if path.exists() else []
    if str(queue) not in known:
        write_private(path, json.dumps([*known, str(queue)], indent=1) + "\n")


def known_queues(folder: Path) -> list[str]:
    path = folder / QUEUES
    return [str(q) for q in json.loads(path.read_text())] if path.exists() else []


@dataclass(frozen=True)
class Candidate:
    ref: str  # <repo>:candidate
    image_id: str
    tag_restored: bool  # the compose tag was moved back onto production's image


def choose_candidate(client: docker.DockerClient, prod: ContainerConfig, image: str | None) -> Candidate:
    """Tag the image under test as <repo>:candidate: `image` when given; else the build that
    moved the compose tag away from production; else the candidate already tagged."""
    compose_tag = tag_of(prod.image)
    candidate_ref = f"{repository(prod.image)}:candidate"
    if image:
        chosen = image_id(client, image)
        if chosen is None:
            raise RolloutError(f"image {image} is not present (invoke build-docker-images builds smtp-out)")
    elif (built := image_id(client, compose_tag)) not in (None, prod.image_id):
        chosen = built
    elif (tagged := image_id(client, candidate_ref)) is not None:
        chosen = tagged
    else:
        raise RolloutError(
            f"no new image to deploy: {compose_tag} is the image production runs and there is no "
            f"{candidate_ref}; build one (invoke build-docker-images) or name one with --image"
        )
    assert chosen is not None
    point_tag(client, candidate_ref, chosen)
    restored = image_id(client, compose_tag) != prod.image_id
    if restored:
        point_tag(client, compose_tag, prod.image_id)
    return Candidate(candidate_ref, chosen, restored)


def parallel_config(
    prod: ContainerConfig, *, name: str, image: str, queue_dir: Path, host: str, port: int
) -> ContainerConfig:
    """Production's configuration, changed only where the parallel container must differ."""
    networks = tuple(Network(n.name, (name,)) for n in prod.networks)
    return (
        prod.with_name(name, hostname=name)
        .with_image(image)
        .with_mount(SPOOL, str(queue_dir))
        .with_published_port("587/tcp", host, port)
        .with_networks(networks)
        .with_labels({ROLE: "parallel", f"{ROLE}.of": prod.name}, drop_prefix=COMPOSE_PREFIX)
    )


def _queue_dir(prod: ContainerConfig, existing: Container | None, queue_dir: Path | None,
               messages: Callable[[Path], int] | None = None) -> Path:  # fmt: skip
    """A fresh queue directory (absent or empty), or the one the parallel container being
    replaced used (its mail is kept). Default: production's queue directory + '-new'."""
    ours = mounted_at(existing, SPOOL) if existing is not None else None
    if queue_dir is None:
        prod_queue = prod.mount_source(SPOOL)
        if prod_queue is None:
            raise RolloutError(f"{prod.name} mounts no queue at {SPOOL}; give --queue-dir")
        queue_dir = Path(f"{prod_queue.rstrip('/')}-new")
    queue_dir = queue_dir.resolve()
    if str(queue_dir) == prod.mount_source(SPOOL):
        raise RolloutError(f"{queue_dir} is production's queue; the parallel container needs its own")
    if queue_dir.exists() and any(queue_dir.iterdir()) and str(queue_dir) != ours:
        raise RolloutError(
            f"{queue_dir} is not empty and no parallel container of ours uses it; give a fresh --queue-dir"
        )
    n = messages(Path(ours)) if ours is not None and str(queue_dir) != ours and messages is not None else 0
    if n:
        raise RolloutError(
            f"the {existing.name if existing else 'parallel container'} being replaced holds {n} message(s) "
            "in "
            f"{ours}; replacing it with another --queue-dir would strand them: keep its queue (omit "
            "--queue-dir), or cut over first"
        )
    return queue_dir


def _existing_parallel(client: docker.DockerClient, name: str) -> Container | None:
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return None
    if container.labels.get(ROLE) != "parallel":
        raise RolloutError(
            f"a container named {name} exists and the rollout did not make it; remove or rename it"
        )
    return container


def _retire(container: Container) -> None:
    """Bring the parallel container being replaced to rest (no delivery or submission cut
    short), then remove it; its queue directory stays."""
    if container.status == "running":
        drain(container)
        quiesce(container)
        container.stop(timeout=30)
    container.remove()


def deploy_parallel(
    client: docker.DockerClient,
    *,
    production: str = "smtp-out",
    name: str = "smtp-out-new",
    image: str | None = None,
    queue_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 1588,
    health_timeout: float = 60.0,
    ca: Path | None = None,
    resolver: str | None = None,
    progress: Progress = print,
) -> RolloutOutcome:
    """Start (or replace) the parallel container and check it: healthy, smoke, canary. Every
    input is checked before anything changes; a parallel container being replaced is drained
    and quiesced first."""

    validate(name=name, host=host, port=port, health_timeout=health_timeout)
    out = RolloutOutcome("deploy-parallel", done="parallel container ready")
    steps = Steps(out, 6, progress)
    prod = ContainerConfig.of(client, running(client, production))
    nets = len(prod.networks)
    steps.line(f"read {production}: image {prod.image} ({short(prod.image_id)}), {nets} network(s)")
    existing = _existing_parallel(client, name)
    old_image = str(existing.attrs["Image"]) if existing is not None else prod.image_id
    queue = _queue_dir(prod, existing, queue_dir, lambda q: messages_in(client, old_image, q))
    candidate = choose_candidate(client, prod, image)
    restored = f"; {tag_of(prod.image)} names production's image again" if candidate.tag_restored else ""
    steps.line(f"image under test {candidate.ref} ({short(candidate.image_id)}){restored}")
    if existing is not None:
        _retire(existing)
    queue.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(ComposeError, OSError):
        remember_queue(state_dir(ComposeService.of(production, prod.labels)), queue)
    steps.line(f"queue {queue}" + (f" (kept from the {name} it replaces)" if existing is not None else ""))
    config = parallel_config(prod, name=name, image=candidate.ref, queue_dir=queue, host=host, port=port)
    container = config.create(client)
    container.start()
    steps.line(f"started {name} on {host}:{port}")
    try:
        wait_for_health(container, "healthy", timeout=health_timeout)
    except NotReady as exc:
        out.failed = f"{exc} (the container is left running for inspection)"
        return out
    steps.line(f"{name} is healthy")
    out.reports.append(smoke.run(client, name, port, host))
    out.reports.append(canary.run(client, name, host=host, port=port, resolver=resolver, ca=ca))
    steps.line(f"smoke test and canary: {'passed' if out.exit_code == 0 else 'FAILED'}")
    return out
