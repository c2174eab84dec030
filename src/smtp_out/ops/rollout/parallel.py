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

from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from ... import SPOOL
from ...checks import Report
from ...engine.config import COMPOSE_PREFIX, ContainerConfig, Network, mounted_at
from ...engine.containers import wait_for_health
from ...engine.polling import NotReady
from ...errors import SmtpOutError
from ...progress import Progress
from .. import canary, smoke

#: The label that marks the containers the rollout made, and what they are.
ROLE = "smtp-out.rollout"


class RolloutError(SmtpOutError):
    """A rollout step was refused or failed; the message names the step."""


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


def running(client: docker.DockerClient, name: str, what: str = "production container") -> Container:
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        raise RolloutError(f"no {what} named {name!r} (docker ps -a lists the containers)") from None
    if container.status != "running":
        raise RolloutError(f"{what} {name} is {container.status}, not running")
    return container


def point_tag(client: docker.DockerClient, ref: str, image_id: str) -> None:
    """Make the tag `ref` name `image_id`."""
    repo, tag = tag_of(ref).rsplit(":", 1)
    client.images.get(image_id).tag(repo, tag)


def image_id(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


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


def _queue_dir(prod: ContainerConfig, existing: Container | None, queue_dir: Path | None) -> Path:
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
    queue_dir.mkdir(parents=True, exist_ok=True)
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


@dataclass
class ParallelOutcome:
    """What deploy-parallel did, and the verdicts on the parallel container."""

    steps: list[str] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    error: str = ""

    @property
    def exit_code(self) -> int:
        return 0 if not self.error and all(r.ok for r in self.reports) else 1

    def text(self) -> str:
        lines = [r.text() for r in self.reports]
        verdict = (
            "parallel container ready"
            if self.exit_code == 0
            else f"NOT ready: {self.error or 'a check failed'}"
        )
        return "\n\n".join([*lines, f"=== deploy-parallel: {verdict} ==="])

    def to_json(self) -> dict[str, object]:
        return {"ok": self.exit_code == 0, "steps": self.steps, "error": self.error,
                "reports": [r.to_json() for r in self.reports]}  # fmt: skip


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
) -> ParallelOutcome:
    """Start (or replace) the parallel container and check it: healthy, smoke, canary."""
    out = ParallelOutcome()

    def step(line: str) -> None:
        out.steps.append(line)
        progress(line)

    prod = ContainerConfig.of(client, running(client, production))
    nets = len(prod.networks)
    step(f"[1/6] read {production}: image {prod.image} ({short(prod.image_id)}), {nets} network(s)")
    candidate = choose_candidate(client, prod, image)
    restored = f"; {tag_of(prod.image)} names production's image again" if candidate.tag_restored else ""
    step(f"[2/6] image under test {candidate.ref} ({short(candidate.image_id)}){restored}")
    existing = _existing_parallel(client, name)
    queue = _queue_dir(prod, existing, queue_dir)
    if existing is not None:
        existing.remove(force=True)
    step(f"[3/6] queue {queue}" + (f" (kept from the {name} it replaces)" if existing is not None else ""))
    config = parallel_config(prod, name=name, image=candidate.ref, queue_dir=queue, host=host, port=port)
    container = config.create(client)
    container.start()
    step(f"[4/6] started {name} on {host}:{port}")
    try:
        wait_for_health(container, "healthy", timeout=health_timeout)
    except NotReady as exc:
        out.error = f"{exc} (the container is left running for inspection)"
        return out
    step(f"[5/6] {name} is healthy")
    out.reports.append(smoke.run(client, name, port, host))
    out.reports.append(canary.run(client, name, host=host, port=port, resolver=resolver, ca=ca))
    step(f"[6/6] smoke test and canary: {'passed' if out.exit_code == 0 else 'FAILED'}")
    return out
