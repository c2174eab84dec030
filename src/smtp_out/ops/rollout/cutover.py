"""Cutover and rollback (the spec's Phase 6 and Rollback Plan), each state change its own step,
printed and written to the rollout journal before it is made.

cutover: refuses unless the parallel container is healthy, its canary passes, its burn-in report
raises no red flag, and docker-compose answers for the project and resolves production's service
to the mounts production has now (queue, keys, certificate). Then, one step each: record
production (rollback point: tag + configuration), back up its queue (held), drain the parallel
container, quiesce and stop it, move its queue into production's (held mail stays held), drain
production, quiesce it, move the compose file's image tag to the tested image, let
docker-compose recreate production, and verify (same mounts, tested image, healthy, smoke,
canary). A failure once production was touched rolls back by itself.

rollback: back to a rollback point (the newest by default): drain, quiesce, tag back, recreate
(by docker-compose; if compose itself fails, from the point's record with compose's labels, so
that a later `docker-compose up -d` adopts the container), verify what the image can show. When
the journal holds an interrupted cutover or rollback, `rollback` recovers from it first, and
needs no running production container to do so.

Ctrl-C, SIGTERM and SIGHUP during a cutover undo what is transient (hold, drain, quiesce, a tag
moved before production was recreated) and exit; a SIGKILL leaves the journal for `rollback`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import docker
import docker.errors
from docker.models.containers import Container

from ... import SPOOL
from ...checks import Report, Result, Verdict
from ...engine.config import COMPOSE_PREFIX, ContainerConfig, mounted_at
from ...engine.containers import ContainerExited, exec_text, health, logs, wait_healthy
from ...engine.polling import NotReady, poll
from ...errors import SmtpOutError
from ...mail import greet
from ...progress import Progress
from .. import canary, smoke
from ..queue import backup, listing
from ..queue.relay import (
    DRAINED,
    QUIESCED,
    drain,
    pick_up,
    quiesce,
    release_all_but,
    restore,
    settings,
)
from ..queue.transfer import move_queue
from ..report import burnin
from .common import (
    Interrupted,
    RolloutError,
    RolloutOutcome,
    StepFailed,
    Steps,
    find_container,
    point_tag,
    running,
    short,
)
from .common import image_id as tagged_image
from .compose import ComposeError, ComposeService, mount_differences
from .journal import Journal
from .points import RollbackPoint, find, record, save, state_dir
from .registry import folder_of, remember

__all__ = ["RolloutOutcome", "Target", "cutover", "rollback", "status"]

#: The steps of a cutover, in order: the progress line of each starts "cutover [n/14]".
CUTOVER_STEPS = 14
#: The steps of a rollback (drain, quiesce, tag, recreate, verify).
ROLLBACK_STEPS = 5


@dataclass(frozen=True)
class Target:
    """Where production is reached and checked from."""

    host: str = "127.0.0.1"
    port: int = 1587
    ca: Path | None = None
    resolver: str | None = None
    health_timeout: float = 60.0


# --- signals ------------------------------------------------------------------------------

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted in the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    old = {s: signal.signal(s, interrupt) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """No signal interrupts the block (the undo of an interrupted step)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


# --- what an image can show -----------------------------------------------------------------

#: Smoke checks on settings a predecessor image may make differently: shown, not a red flag.
PREDECESSOR_SETTINGS = {
    "Milter default action not accept", "DKIM milter configured", "No errors in logs since boot",
    "IPv4 preference", "Hostname (feedsubscription.com)", "Virtual alias domains", "Transport maps",
    "DKIM selector (mail)", "TLS configured", "OpenDKIM milter socket",
    "Milter applied on 587", "Header checks on 587 (From: policy)", "TLS floor on 587",
}  # fmt: skip


def drop_canary_leftovers(container: Container) -> list[str]:
    """Delete the canary's messages an interrupted canary left on hold (never anyone else's)."""
    canaries = [
        m for m in listing.messages(container)
        if m.get("queue_name") == "hold" and str(m.get("sender", "")).startswith("smtp-out-canary@")
    ]  # fmt: skip
    ids = [str(m["queue_id"]) for m in canaries]
    if ids:
        exec_text(container, f"printf '%s\\n' {' '.join(ids)} | postsuper -d - 2>/dev/null")
    return ids


def has_canary_hold(container: Container) -> bool:
    """The image holds the canary's message on arrival (this project's images do)."""
    rc, _ = exec_text(container, "test -e /etc/postfix/submission_canary_senders")
    return rc == 0


def has_healthcheck(container: Container) -> bool:
    cfg = container.attrs.get("Config", {}).get("Healthcheck") or {}
    return bool(cfg.get("Test")) and cfg.get("Test") != ["NONE"]


def _as_predecessor(report: Report, *, healthcheck: bool) -> Report:
    """The smoke report of an image that is not this project's: no healthcheck is N/A, and the
    settings it makes its own way are warnings (it is what production ran before)."""
    results = []
    fix = "the predecessor image is configured this way; the new image fixes it"
    for result in report.results:
        r = result
        if r.name == "Healthcheck healthy" and not healthcheck:
            r = Result.of(r.name, Verdict.NA, "the image defines no healthcheck", r.expect)
        elif r.name in PREDECESSOR_SETTINGS and r.verdict is Verdict.FAIL:
            r = replace(r, verdict=Verdict.WARN, passed=True, fix=r.fix or fix)
        results.append(r)
    return Report(report.title + " (predecessor image)", tuple(results), report.seconds)


def _canary_na(name: str) -> Report:
    why = (
        "the image has no canary hold (submission_canary_senders): a canary would be delivered, "
        "and unsigned mail could leave; no mail is sent through it"
    )
    return Report(
        f"SMTP-OUT DKIM CANARY: {name}", (Result.of("Canary", Verdict.NA, why, "held, signed"),), 0.0
    )


def wait_serving(container: Container, t: Target) -> None:
    """Healthy where the image has a healthcheck; else running and greeting with 220."""
    if has_healthcheck(container):
        wait_healthy(container, timeout=t.health_timeout, restarts=0)
        return

    def greets() -> bool | None:
        container.reload()
        s = container.attrs.get("State", {})
        if s.get("Status") in ("exited", "dead") or s.get("Restarting"):
            raise ContainerExited(str(container.name), int(s.get("ExitCode", -1)), "")
        return True if greet(t.host, t.port, timeout=2.0).banner.startswith("220") else None

    poll(greets, timeout=t.health_timeout, interval=0.2, seen=lambda: "no 220 greeting")


def binds_of(attrs: dict[str, object]) -> dict[str, str]:
    """Mount point -> host path of a container's (or a record's) bind mounts."""
    mounts = attrs.get("Mounts") or []
    assert isinstance(mounts, list)
    return {str(m["Destination"]): str(m["Source"]) for m in mounts if m.get("Type", "bind") == "bind"}


def _verify(client: docker.DockerClient, steps: Steps, *, name: str, image_id: str, old_id: str,
            mounts: dict[str, str], t: Target) -> None:  # fmt: skip
    """The recreated production: a new container on `image_id`, the same mounts, serving, the
    smoke test and the canary (each where the image can show it)."""
    container = client.containers.get(name)
    if container.id == old_id:
        raise StepFailed("verify", f"{name} was not recreated (same container {old_id[:12]})")
    if container.attrs["Image"] != image_id:
        raise StepFailed("verify", f"{name} runs {short(container.attrs['Image'])}, not {short(image_id)}")
    if moved := mount_differences(mounts, binds_of(container.attrs)):
        raise StepFailed("verify", f"{name} mounts other folders than before: {'; '.join(moved)}")
    try:
        wait_serving(container, t)
    except ContainerExited as exc:
        raise StepFailed("verify", str(exc)) from None
    except NotReady as exc:
        tail = [ln for ln in logs(container, tail=20).splitlines() if ln.strip()]
        last = tail[-1] if tail else "(no output)"
        raise StepFailed("verify", f"{exc} ({container.status}; its last log line: {last})") from None
    # mail deferred while production was drained: deliver it now, and pick up moved mail at once
    exec_text(container, "postqueue -f; postkick public pickup W")
    if has_canary_hold(container):
        steps.check(smoke.run(client, name, t.port, t.host), "smoke test")
        steps.check(
            canary.run(client, name, host=t.host, port=t.port, resolver=t.resolver, ca=t.ca), "canary"
        )
    else:
        report = _as_predecessor(
            smoke.run(client, name, t.port, t.host), healthcheck=has_healthcheck(container)
        )
        steps.check(report, "smoke test")
        steps.out.reports.append(_canary_na(name))


# --- recreating production ------------------------------------------------------------------


def _leftovers(client: docker.DockerClient, point: RollbackPoint) -> list[Container]:
    """Containers of production's compose service: the one by its name, and any that compose
    renamed (<id>_<name>) during a recreate it did not finish."""
    found = client.containers.list(
        all=True,
        filters={
            "label": [f"{COMPOSE_PREFIX}project={point.project}", f"{COMPOSE_PREFIX}service={point.service}"]
        },
    )
    named = find_container(client, point.production)
    return [*found, *([named] if named is not None and named.id not in {c.id for c in found} else [])]


def from_record(client: docker.DockerClient, point: RollbackPoint) -> Container:
    """Production as the rollback point recorded it (compose's labels included, so a later
    `docker-compose up -d` adopts it), created and started by the engine: for when compose
    itself fails. Whatever holds the name goes first (it was drained and quiesced)."""
    for c in _leftovers(client, point):
        with contextlib.suppress(docker.errors.APIError):
            c.stop(timeout=30)
        c.remove(force=True)
    image_cfg = client.images.get(point.image_id).attrs.get("Config") or {}
    config = ContainerConfig.from_attrs(point.container, image_cfg).with_name(point.production)
    container = config.with_image(point.image_ref).create(client)
    container.start()
    return container


def _recreate(client: docker.DockerClient, point: RollbackPoint, progress: Progress, *, force: bool) -> str:
    """docker-compose recreates production; if compose fails, the engine does from the record."""
    try:
        point.compose.up(force_recreate=force)
        return "docker-compose"
    except ComposeError as exc:
        progress(f"          docker-compose failed ({exc}); recreating {point.production} from the record")
        from_record(client, point)
        return "the record (docker-compose up -d adopts it)"


# --- rollback and recovery ------------------------------------------------------------------


#: How long a rollback waits for a production container that is running but still starting
#: (one an interrupted rollback had just recreated) before it drains it.
SETTLE_SECONDS = 20.0


def _serving(container: Container | None, t: Target) -> bool:
    """Production is serving: healthy where its image has a healthcheck, else greeting with 220.
    A container still starting gets SETTLE_SECONDS: draining one whose Postfix is not up yet
    fails, and one that comes up right after a skipped drain delivers while it is stopped."""
    if container is None or container.status != "running":
        return False
    if has_healthcheck(container) and (state := health(container)) != "starting":
        return state == "healthy"
    try:
        wait_serving(container, replace(t, health_timeout=min(t.health_timeout, SETTLE_SECONDS)))
    except (NotReady, SmtpOutError):
        return False
    return True


def _roll_back(client: docker.DockerClient, point: RollbackPoint, t: Target, out: RolloutOutcome,
               progress: Progress, *, journal: Journal) -> None:  # fmt: skip
    """Go back to `point`: drain and quiesce what runs, move the tag back, recreate, verify."""
    steps = Steps(out, ROLLBACK_STEPS, progress)
    current = find_container(client, point.production)
    serving = _serving(current, t)
    with steps.step(f"drain {point.production}"):
        if current is not None and serving:
            journal.begin("rollback-drain", steps.out.steps[-1], container=current.id,
                          settings=settings(current, DRAINED))  # fmt: skip
            drain(current)
    with steps.step(f"quiesce {point.production}"):
        if current is not None and serving:
            journal.begin("rollback-quiesce", steps.out.steps[-1], container=current.id,
                          settings=settings(current, QUIESCED))  # fmt: skip
            quiesce(current)
    with steps.step(f"{point.image_ref} -> {point.tag} ({short(point.image_id)})"):
        journal.begin("rollback-tag", steps.out.steps[-1], image=point.image_id,
                      was=tagged_image(client, point.image_ref) or "")  # fmt: skip
        point_tag(client, point.image_ref, point.image_id)
    with steps.step(f"recreate {point.service} on {short(point.image_id)}"):
        journal.begin("rollback-recreate", steps.out.steps[-1])
        how = _recreate(client, point, progress, force=True)
        progress(f"          recreated by {how}")
    with steps.step(f"verify {point.production}: same mounts, serving, smoke test, canary where it applies"):
        old = str(current.id or "") if current is not None else ""
        _verify(client, steps, name=point.production, image_id=point.image_id, old_id=old,
                mounts=binds_of(point.container), t=t)  # fmt: skip


def _finish_parallel(client: docker.DockerClient, journal: Journal, point: RollbackPoint,
                     progress: Progress) -> None:  # fmt: skip
    """An interrupted cutover's parallel container: running, its drain and quiesce undone;
    stopped, what is left in its queue moved into production's (held mail stays held)."""
    step = journal.get("drain-parallel")
    if step is None:
        return
    par = find_container(client, journal.parallel)
    if par is not None and par.status == "running" and par.id == step.data.get("container"):
        restore(
            par,
            {
                **step.data.get("settings", {}),
                **(journal.get("stop-parallel") or step).data.get("settings", {}),
            },
        )
        progress(f"          {journal.parallel}: drain and quiesce undone")
        return
    moving = journal.get("move")
    if moving is not None and moving.state == "done":
        return  # its queue is in production's already
    _wait_for_moves(client)
    source, dest = step.data.get("queue"), binds_of(point.container).get(SPOOL)
    if source and dest and Path(source).exists():
        moved = move_queue(client, str(step.data.get("image")), Path(source), Path(dest))
        progress(f"          moved the {moved.moved} message(s) left in {source} into {dest}")
    prod = find_container(client, journal.production)
    if prod is not None and prod.status == "running":
        # production was recreated already and stops no more: have pickup take the moved mail now
        exec_text(prod, "postkick public pickup W 2>/dev/null")


def _wait_for_moves(client: docker.DockerClient) -> None:
    """A queue move the interrupted cutover started runs on in the engine: let it finish."""
    for c in client.containers.list(all=True, filters={"name": "smtp-out-move"}):
        with contextlib.suppress(docker.errors.APIError):
            c.wait(timeout=120)
            c.remove(force=True)


def _release_hold(client: docker.DockerClient, journal: Journal, progress: Progress) -> None:
    step = journal.get("backup")
    if step is None or step.state == "done" or "already_held" not in step.data:
        return  # no hold, or the backup released it itself
    prod = find_container(client, journal.production)
    if prod is not None and prod.status == "running":
        released = release_all_but(prod, set(step.data["already_held"]))
        progress(f"          released {len(released)} message(s) the backup held")


def recover(
    client: docker.DockerClient, journal: Journal, target: Target, progress: Progress
) -> RolloutOutcome:
    """Bring production back from an interrupted cutover or rollback: release the hold, roll
    back to the rollback point the journal names, then finish with the parallel container (its
    drain undone, or what is left of its queue moved into production's). Every step goes on
    the same journal, so an interrupted recovery is recovered the same way."""
    out = RolloutOutcome("rollback")
    progress(f"recovering: {journal.where()}")
    if not journal.point:
        with shielded():
            for name in (journal.production, journal.parallel):
                if name and (c := find_container(client, name)) is not None and c.status == "running":
                    drop_canary_leftovers(c)
        journal.finish("recovered: production was not changed", changed=False)
        out.notes.append(f"the interrupted {journal.action} had not changed production; nothing to undo")
        return out
    point = find(journal.folder, journal.point)
    try:
        with shielded():
            _release_hold(client, journal, progress)
            _wait_for_moves(client)
            point.compose.wait_idle()  # a compose run the killed task started finishes first
        _roll_back(client, point, target, out, progress, journal=journal)
        with shielded():
            if journal.action == "cutover":
                _finish_parallel(client, journal, point, progress)
            for name in (journal.production, journal.parallel):
                if name and (c := find_container(client, name)) is not None and c.status == "running":
                    drop_canary_leftovers(c)
        journal.finish(f"recovered: {point.production} on {point.tag}")
    except StepFailed as exc:
        out.failed = str(exc)
    return out


def _folder(client: docker.DockerClient, production: str, compose_dir: Path | None) -> Path:
    """The rollout folder: from the production container's compose labels, from the compose
    project's directory, or from the record of where the last rollout of `production` ran."""
    if compose_dir is not None:
        return compose_dir.resolve() / state_dir_name()
    container = find_container(client, production)
    if container is not None:
        with contextlib.suppress(ComposeError):
            return state_dir(ComposeService.of(production, container.labels))
    known = folder_of(production)
    if known is not None:
        return known
    raise RolloutError(
        f"no container named {production!r} and no rollout of it recorded; "
        "give the compose project's directory with --compose-dir"
    )


def state_dir_name() -> Path:
    from .points import STATE

    return STATE


def rollback(
    client: docker.DockerClient,
    *,
    folder: Path | None = None,
    production: str = "smtp-out",
    to: str = "",
    compose_dir: Path | None = None,
    target: Target = Target(),
    progress: Progress = print,
) -> RolloutOutcome:
    """Recover an interrupted rollout, else roll production back to a rollback point (the newest
    when `to` is empty)."""
    folder = folder or _folder(client, production, compose_dir)
    journal = Journal.load(folder)
    if journal is not None and journal.interrupted and not to:
        return recover(client, journal, target, progress)
    if journal is not None and not journal.changed and not to:
        out = RolloutOutcome("rollback", done="nothing to recover")
        out.notes.append(
            f"{journal.where()}: production was not changed (--to rollback-<time> goes back anyway)"
        )
        for name in (journal.production, journal.parallel):
            if name and (c := find_container(client, name)) is not None and c.status == "running":
                drop_canary_leftovers(c)
        return out
    point = find(folder, to)
    out = RolloutOutcome("rollback")
    progress(f"rollback to {point.name}: {point.tag} ({short(point.image_id)}), recorded {point.created}")
    j = Journal.start(folder, "rollback", point.production)
    j.point = point.name
    j.save()
    try:
        with interruptible():
            _roll_back(client, point, target, out, progress, journal=j)
        j.finish(f"done: {point.production} on {point.tag}")
    except StepFailed as exc:
        out.failed = str(exc)
        j.finish(f"FAILED: {exc}")
    except Interrupted as sig:
        with shielded():
            _undo_rollback(client, j, point, progress)
        out.failed = f"interrupted ({sig}); run `invoke rollback` again to finish it"
    return out


def _undo_rollback(client: docker.DockerClient, journal: Journal, point: RollbackPoint,
                   progress: Progress) -> None:  # fmt: skip
    """After an interrupt, before production was recreated: undo the rollback's drain and
    quiesce, and put the compose tag back on the image production still runs. What remains (the
    rollback itself) is for `invoke rollback` again."""
    if journal.begun("rollback-recreate"):
        return
    name = point.production
    undo = (("rollback-drain", name, "drain"), ("rollback-quiesce", name, "quiesce"))
    _undo_settings(client, journal, undo, progress)
    tag = journal.get("rollback-tag")
    if tag is not None and tag.data.get("was"):
        with contextlib.suppress(Exception):
            point_tag(client, point.image_ref, str(tag.data["was"]))
            progress(f"          {point.image_ref} names {short(str(tag.data['was']))} again")


def status(
    client: docker.DockerClient, *, production: str = "smtp-out", compose_dir: Path | None = None
) -> RolloutOutcome:
    """Where the rollout of `production` stands: the journal's last word, production now."""
    out = RolloutOutcome("rollout-status", done="nothing to recover")
    folder = _folder(client, production, compose_dir)
    journal = Journal.load(folder)
    prod = find_container(client, production)
    now = (
        f"{production}: {prod.status} on {short(str(prod.attrs['Image']))}"
        if prod
        else f"{production}: no container"
    )
    out.notes.append(now)
    if journal is None:
        out.notes.append(f"no rollout recorded in {folder}")
        return out
    out.notes += [journal.where(), *(f"  {s.line} ({s.state})" for s in journal.steps)]
    if journal.interrupted:
        out.failed = "a rollout was interrupted; `invoke rollback` recovers it"
    return out


# --- cutover ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """The two containers a cutover works on, read once."""

    prod: Container
    par: Container
    service: ComposeService
    candidate: str  # the image id the parallel container runs: what was tested
    prod_queue: Path
    par_queue: Path
    mounts: dict[str, str]  # production's bind mounts now


def _plan(client: docker.DockerClient, production: str, parallel: str) -> _Plan:
    prod = running(client, production)
    par = running(client, parallel, "parallel container")
    prod_queue, par_queue = mounted_at(prod, SPOOL), mounted_at(par, SPOOL)
    if prod_queue is None or par_queue is None:
        raise RolloutError(f"{production} and {parallel} must each mount a queue at {SPOOL}")
    return _Plan(prod, par, ComposeService.of(production, prod.labels), str(par.attrs["Image"]),
                 Path(prod_queue), Path(par_queue), binds_of(prod.attrs))  # fmt: skip


def check_compose(plan: _Plan) -> None:
    """docker-compose answers for the project and resolves production's service, in this
    environment, to the image tag and the mounts production has now."""
    config = plan.service.config()
    image = str(plan.prod.attrs["Config"]["Image"])
    if str(config.get("image", "")) != image:
        raise RolloutError(
            f"docker-compose would run image {config.get('image')!r}, production runs {image!r}"
        )
    if moved := mount_differences(plan.mounts, plan.service.binds()):
        raise RolloutError(
            "docker-compose would recreate production on other folders: "
            + "; ".join(moved)
            + " (a variable in this shell overrides .env? `docker-compose config` shows what it resolves)"
        )


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
    with steps.step(f"docker-compose resolves {plan.service.service} to {plan.prod.name}'s image and mounts"):
        check_compose(plan)


def _undo_settings(client: docker.DockerClient, journal: Journal,
                   undo: Sequence[tuple[str, str, str]], progress: Progress) -> None:  # fmt: skip
    """For each (journal step, container, what) begun: put back the main.cf settings the step
    recorded, if the container it changed is still the one running under that name."""
    for key, name, what in undo:
        step = journal.get(key)
        c = find_container(client, name) if step is not None else None
        ours = step is not None and c is not None and c.id == step.data.get("container")
        if step is not None and c is not None and ours and c.status == "running":
            with contextlib.suppress(Exception):
                restore(c, step.data.get("settings", {}))
                progress(f"          {name}: {what} undone")


def _undo_transient(client: docker.DockerClient, journal: Journal, progress: Progress) -> None:
    """After an interrupt: release the hold, undo drains and quiesces, and put the compose tag
    back when production was not recreated yet. What remains is for `invoke rollback`."""
    _release_hold(client, journal, progress)
    par, prod = journal.parallel, journal.production
    undo = (("drain-parallel", par, "drain"), ("stop-parallel", par, "stop"),
            ("drain-production", prod, "drain"), ("quiesce-production", prod, "quiesce"))  # fmt: skip
    _undo_settings(client, journal, undo, progress)
    tag = journal.get("tag")
    if tag is not None and not journal.begun("recreate") and journal.point:
        point = find(journal.folder, journal.point)
        point_tag(client, point.image_ref, point.image_id)
        progress(f"          {point.image_ref} names {short(point.image_id)} again")


def cutover(client: docker.DockerClient, *, production: str = "smtp-out", parallel: str = "smtp-out-new",
            parallel_port: int = 1588, since: str = "", target: Target = Target(),
            progress: Progress = print) -> RolloutOutcome:  # fmt: skip
    """Move production onto the image the parallel container runs (see the module docstring)."""
    out = RolloutOutcome("cutover")
    steps = Steps(out, CUTOVER_STEPS, progress)
    plan = _plan(client, production, parallel)
    folder = state_dir(plan.service)
    if (old := Journal.load(folder)) is not None and old.interrupted:
        raise RolloutError(f"{old.where()}; nothing was changed")
    remember(production, folder)
    journal = Journal.start(folder, "cutover", production, parallel)
    try:
        with interruptible():
            _preconditions(client, steps, plan, parallel_port=parallel_port, since=since, t=target)
    except StepFailed as exc:
        out.failed = f"{exc} (refused: nothing was changed)"
        journal.finish(f"refused: {exc}", changed=False)
        return out
    except Interrupted as sig:
        with shielded():
            drop_canary_leftovers(plan.par)
        journal.finish(f"interrupted ({sig}) before any change", changed=False)
        out.failed = f"interrupted ({sig}) before any change: nothing to undo"
        return out
    point: RollbackPoint | None = None
    try:
        with interruptible():
            try:
                point = _changes(client, steps, plan, journal, t=target, progress=progress)
                journal.finish("done")
            except StepFailed as exc:
                out.failed = str(exc)
                if point is None and journal.point:
                    point = find(folder, journal.point)
                if not journal.begun("drain-production") or point is None:
                    with shielded():
                        _undo_transient(client, journal, progress)
                    journal.finish(f"FAILED before production was touched: {exc}", changed=False)
                    out.failed += " (production was not changed)"
                    return out
                out.rolled_back_to = f"{point.tag} ({short(point.image_id)})"
                progress(f"cutover FAILED at {exc}; rolling back to {point.tag}")
                recovered = recover(client, journal, target, progress)
                out.reports += recovered.reports
                out.steps += recovered.steps
                out.rollback_failed = recovered.failed
    except Interrupted as sig:
        with shielded():
            progress(f"cutover interrupted ({sig}): undoing what is transient")
            _undo_transient(client, journal, progress)
        out.failed = (
            f"interrupted ({sig}) at {journal.steps[-1].line if journal.steps else 'the start'}; "
            "`invoke rollback` recovers from the journal"
        )
    return out


def _changes(client: docker.DockerClient, steps: Steps, plan: _Plan, journal: Journal, *, t: Target,  # noqa: PLR0915
             progress: Progress) -> RollbackPoint:  # fmt: skip
    """Every change of the cutover, each journalled before it is made (one step per change, so
    this is long: the order of the steps is the cutover; see the module docstring)."""
    name, par = str(plan.prod.name), str(plan.par.name)
    with steps.step(f"record {name} and tag its image as a rollback point"):
        journal.begin("record", out_line(steps))
        point = record(client, plan.prod, plan.service)
        journal.point = point.name
        journal.done("record")
    with steps.step(f"back up {name}'s queue (held for the snapshot)"):
        journal.begin("backup", out_line(steps), container=plan.prod.id)
        archive = state_dir(plan.service) / f"queue-{point.created}.tar.gz"
        backup.backup(client, plan.prod_queue, archive, hold=True, progress=progress,
                      before_hold=lambda ids: journal.note("backup", already_held=sorted(ids)))  # fmt: skip
        point = replace(point, queue_backup=str(archive))
        save(point, state_dir(plan.service))
        journal.done("backup")
    with steps.step(f"drain {par}"):
        journal.begin("drain-parallel", out_line(steps), container=plan.par.id, queue=str(plan.par_queue),
                      image=plan.candidate, settings=settings(plan.par, DRAINED))  # fmt: skip
        drain(plan.par)
        journal.done("drain-parallel")
    with steps.step(f"quiesce and stop {par}"):
        journal.begin(
            "stop-parallel", out_line(steps), container=plan.par.id, settings=settings(plan.par, QUIESCED)
        )
        quiesce(plan.par)
        plan.par.stop(timeout=30)
        journal.done("stop-parallel")
    with steps.step(f"move {par}'s queue into {name}'s (held mail stays held)"):
        journal.begin("move", out_line(steps))
        moved = move_queue(client, plan.candidate, plan.par_queue, plan.prod_queue)
        if moved.left:
            raise StepFailed("move the parallel queue", f"{moved.left} message(s) left in {plan.par_queue}")
        pick_up(plan.prod)  # queued by production now, never half-way when it stops
        progress(f"{'':10}moved {moved.moved} message(s), {moved.held} of them held")
        journal.done("move")
    with steps.step(f"drain {name}"):
        journal.begin(
            "drain-production", out_line(steps), container=plan.prod.id, settings=settings(plan.prod, DRAINED)
        )
        drain(plan.prod)
        journal.done("drain-production")
    with steps.step(f"quiesce {name}"):
        journal.begin("quiesce-production", out_line(steps), container=plan.prod.id,
                      settings=settings(plan.prod, QUIESCED))  # fmt: skip
        quiesce(plan.prod)
        journal.done("quiesce-production")
    with steps.step(f"{point.image_ref} -> {short(plan.candidate)}"):
        journal.begin("tag", out_line(steps), image=plan.candidate)
        point_tag(client, point.image_ref, plan.candidate)
        journal.done("tag")
    with steps.step(f"docker-compose recreates {plan.service.service} on {short(plan.candidate)}"):
        journal.begin("recreate", out_line(steps))
        plan.service.up()
        journal.done("recreate")
    with steps.step(
        f"verify {name}: same mounts, new container on {short(plan.candidate)}, healthy, smoke, canary"
    ):
        journal.begin("verify", out_line(steps))
        _verify(
            client,
            steps,
            name=name,
            image_id=plan.candidate,
            old_id=str(plan.prod.id),
            mounts=plan.mounts,
            t=t,
        )
        journal.done("verify")
    return point


def out_line(steps: Steps) -> str:
    return steps.out.steps[-1]
