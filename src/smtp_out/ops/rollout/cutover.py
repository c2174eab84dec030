"""Cutover and rollback (the spec's Phase 6 and Rollback Plan), each step checked and printed.

cutover: refuses unless the parallel container is healthy, its canary passes and its burn-in
report raises no red flag. Then: record production (rollback point: tag + configuration), back
up its queue (held, consistent), drain and stop the parallel container and move its queue into
production's, drain production, move the image tag production's compose file names to the
tested image and let docker-compose recreate production from its compose file, and verify
(new container on the tested image, healthy, smoke test, canary). Any failure once production
was touched rolls back by itself to the rollback point, verifies again, and exits 1 naming the
step that failed.

rollback: to a rollback point (the newest by default), the same way: drain, move the tag back,
docker-compose recreates production, verify. The queue directory is production's own all along.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from ... import SPOOL
from ...checks import Report
from ...engine.config import mounted_at
from ...engine.containers import ContainerExited, exec_text, health, wait_healthy
from ...engine.polling import NotReady
from ...errors import SmtpOutError
from ...progress import Progress
from .. import canary, smoke
from ..queue import backup
from ..queue.relay import drain, pick_up, quiesce
from ..queue.transfer import move_queue
from ..report import burnin
from .compose import ComposeService
from .parallel import RolloutError, point_tag, running, short
from .points import RollbackPoint, find, record, save, state_dir


class StepFailed(SmtpOutError):
    """A step of the rollout failed; names it."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


@dataclass
class RolloutOutcome:
    """What a cutover or rollback did, step by step, and the verdicts it reached."""

    action: str
    steps: list[str] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    failed: str = ""  # "<step>: <reason>", empty when every step passed
    rolled_back_to: str = ""
    rollback_failed: str = ""

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def text(self) -> str:
        if not self.failed:
            verdict = f"{self.action}: done"
        elif self.rolled_back_to:
            again = (
                f"; and the rollback FAILED too: {self.rollback_failed}"
                if self.rollback_failed
                else ", verified"
            )
            verdict = f"{self.action} FAILED at {self.failed}; rolled back to {self.rolled_back_to}{again}"
        else:
            verdict = f"{self.action} FAILED at {self.failed}"
        return "\n\n".join([*(r.text() for r in self.reports), f"=== {verdict} ==="])

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action, "ok": not self.failed, "steps": self.steps, "failed": self.failed,
            "rolled_back_to": self.rolled_back_to, "rollback_failed": self.rollback_failed,
            "reports": [r.to_json() for r in self.reports],
        }  # fmt: skip


class Steps:
    """Numbered steps, printed as they start and recorded in the outcome."""

    def __init__(self, out: RolloutOutcome, total: int, progress: Progress) -> None:
        self.out, self.total, self.progress, self.n = out, total, progress, 0

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.n += 1
        line = f"{self.out.action} [{self.n}/{self.total}] {what}"
        self.out.steps.append(line)
        self.progress(line)
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


@dataclass(frozen=True)
class Target:
    """Where production is reached and checked from."""

    host: str = "127.0.0.1"
    port: int = 1587
    ca: Path | None = None
    resolver: str | None = None
    health_timeout: float = 60.0


def _switch(client: docker.DockerClient, service: ComposeService, image_ref: str, image_id: str,
            *, force: bool = False) -> None:  # fmt: skip
    """Point the compose file's image tag at `image_id` and let compose recreate production
    (`force`: recreate even when nothing changed, which also undoes a drain)."""
    point_tag(client, image_ref, image_id)
    service.up(force_recreate=force)


def _verify(
    client: docker.DockerClient, steps: Steps, *, name: str, image_id: str, old_id: str, t: Target
) -> None:
    """The recreated production: a new container on `image_id`, healthy, smoke test, canary."""
    container = client.containers.get(name)
    if container.id == old_id:
        raise StepFailed("verify", f"{name} was not recreated (same container {old_id[:12]})")
    if container.attrs["Image"] != image_id:
        raise StepFailed("verify", f"{name} runs {short(container.attrs['Image'])}, not {short(image_id)}")
    try:
        wait_healthy(container, timeout=t.health_timeout, restarts=0)  # a new container: none yet
    except (ContainerExited, NotReady) as exc:
        raise StepFailed("verify", str(exc)) from None
    # mail deferred while production was drained: deliver it now, and pick up moved mail at once
    exec_text(container, "postqueue -f; postkick public pickup W")
    steps.check(smoke.run(client, name, t.port, t.host), "smoke test")
    steps.check(canary.run(client, name, host=t.host, port=t.port, resolver=t.resolver, ca=t.ca), "canary")


def _roll_back(client: docker.DockerClient, point: RollbackPoint, t: Target, out: RolloutOutcome,
               progress: Progress) -> None:  # fmt: skip
    """Go back to `point`: drain what runs, move the tag back, compose recreates, verify."""
    steps = Steps(out, 3, progress)
    try:
        current: Container | None = client.containers.get(point.production)
    except docker.errors.NotFound:
        current = None
    serving = current is not None and current.status == "running" and health(current) == "healthy"
    with steps.step(f"drain {point.production}"):
        if current is not None and serving:
            drain(current)
    with steps.step(f"{point.image_ref} -> {point.tag}; docker-compose recreates {point.service}"):
        if current is not None and serving:
            quiesce(current)
        _switch(client, point.compose, point.image_ref, point.image_id, force=True)
    with steps.step(f"verify {point.production}: healthy, smoke test, canary"):
        old = current.id or "" if current else ""
        _verify(client, steps, name=point.production, image_id=point.image_id, old_id=old, t=t)


def rollback(
    client: docker.DockerClient,
    *,
    folder: Path | None = None,
    production: str = "smtp-out",
    to: str = "",
    target: Target = Target(),
    progress: Progress = print,
) -> RolloutOutcome:
    """Roll production back to a rollback point (the newest when `to` is empty)."""
    if folder is None:
        try:
            labels = client.containers.get(production).labels
        except docker.errors.NotFound:
            raise RolloutError(
                f"no container named {production!r}: give the rollback points' folder"
            ) from None
        folder = state_dir(ComposeService.of(production, labels))
    point = find(folder, to)
    out = RolloutOutcome("rollback")
    progress(f"rollback to {point.name}: {point.tag} ({short(point.image_id)}), recorded {point.created}")
    try:
        _roll_back(client, point, target, out, progress)
    except StepFailed as exc:
        out.failed = str(exc)
    return out


@dataclass(frozen=True)
class _Plan:
    """The two containers a cutover works on, read once."""

    prod: Container
    par: Container
    service: ComposeService
    candidate: str  # the image id the parallel container runs: what was tested
    prod_queue: Path
    par_queue: Path


def _plan(client: docker.DockerClient, production: str, parallel: str) -> _Plan:
    prod = running(client, production)
    par = running(client, parallel, "parallel container")
    prod_queue, par_queue = mounted_at(prod, SPOOL), mounted_at(par, SPOOL)
    if prod_queue is None or par_queue is None:
        raise RolloutError(f"{production} and {parallel} must each mount a queue at {SPOOL}")
    return _Plan(prod, par, ComposeService.of(production, prod.labels), str(par.attrs["Image"]),
                 Path(prod_queue), Path(par_queue))  # fmt: skip


def _preconditions(client: docker.DockerClient, steps: Steps, plan: _Plan, *, parallel_port: int, since: str,
                   t: Target) -> None:  # fmt: skip
    name = str(plan.par.name)
    with steps.step(f"{name} is healthy"):
        if (state := health(plan.par)) != "healthy":
            raise StepFailed(f"{name} is healthy", f"it is {state}")
    with steps.step(f"canary through {name}"):
        steps.check(
            canary.run(client, name, host=t.host, port=parallel_port, resolver=t.resolver, ca=t.ca), "canary"
        )
    with steps.step(f"burn-in report on {name}: no red flag"):
        steps.check(burnin.run(client, [name], since).items[0][1], "burn-in report")


def _prepare(client: docker.DockerClient, steps: Steps, plan: _Plan, progress: Progress) -> RollbackPoint:
    """Record the rollback point, back up production's queue, fold the parallel queue into it.
    Production keeps running, unchanged."""
    name = str(plan.prod.name)
    with steps.step(f"record {name} and tag its image as a rollback point"):
        point = record(client, plan.prod, plan.service)
    with steps.step(f"back up {name}'s queue (held for the snapshot)"):
        archive = state_dir(plan.service) / f"queue-{point.created}.tar.gz"
        backup.backup(client, plan.prod_queue, archive, hold=True, progress=progress)
        point = RollbackPoint(**{**point.__dict__, "queue_backup": str(archive)})
        save(point, state_dir(plan.service))
    with steps.step(f"drain and stop {plan.par.name}; move its queue into {name}'s"):
        drain(plan.par)
        quiesce(plan.par)
        plan.par.stop(timeout=30)
        moved = move_queue(client, plan.candidate, plan.par_queue, plan.prod_queue)
        if moved.left:
            raise StepFailed("move the parallel queue", f"{moved.left} message(s) left in {plan.par_queue}")
        pick_up(plan.prod)  # queued by production now, never half-way when it stops
        progress(f"{'':10}moved {moved.moved} message(s)")
    return point


def cutover(client: docker.DockerClient, *, production: str = "smtp-out", parallel: str = "smtp-out-new",
            parallel_port: int = 1588, since: str = "", target: Target = Target(),
            progress: Progress = print) -> RolloutOutcome:  # fmt: skip
    """Move production onto the image the parallel container runs (see the module docstring)."""
    out = RolloutOutcome("cutover")
    steps = Steps(out, 9, progress)
    plan = _plan(client, production, parallel)
    try:
        _preconditions(client, steps, plan, parallel_port=parallel_port, since=since, t=target)
    except StepFailed as exc:
        out.failed = f"{exc} (refused: nothing was changed)"
        return out
    try:
        point = _prepare(client, steps, plan, progress)
    except StepFailed as exc:
        out.failed = f"{exc} (production was not changed)"
        return out
    try:
        with steps.step(f"drain {production}"):
            drain(plan.prod)
        with steps.step(
            f"{point.image_ref} -> {short(plan.candidate)}; docker-compose recreates {plan.service.service}"
        ):
            _switch(client, plan.service, point.image_ref, plan.candidate)
        with steps.step(
            f"verify {production}: new container on {short(plan.candidate)}, healthy, smoke, canary"
        ):
            _verify(
                client, steps, name=production, image_id=plan.candidate, old_id=str(plan.prod.id), t=target
            )
    except StepFailed as exc:
        out.failed = str(exc)
        out.rolled_back_to = f"{point.tag} ({short(point.image_id)})"
        try:
            _roll_back(client, point, target, out, progress)
        except StepFailed as again:
            out.rollback_failed = str(again)
    return out
