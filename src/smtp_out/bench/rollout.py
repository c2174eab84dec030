"""Rollout figures: how long production does not greet during a cutover and a rollback, how long a
rollback takes, how many of the app's attempts were refused meanwhile; the outage of the automatic
rollback after a cutover to an image that fails on production's queue; and the fault matrix (a
cutover, and a rollback, cut at every step by SIGINT and by SIGKILL, then `invoke rollback`):
cells, recovered, lost.

On the rollout test network (compose-managed production, the app sending one message every
100 ms by the service name), a probe on the host connects to 127.0.0.1:1587 every 20 ms and
waits for the greeting; the outage window is the longest run of failed probes, from the first
failure to the next 220.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from .. import IMAGE
from ..engine import images
from ..engine.polling import poll
from ..mail import greet
from ..ops.queue import listing
from ..ops.rollout.common import ROLE, RolloutOutcome
from ..ops.rollout.cutover import CUTOVER_STEPS, ROLLBACK_STEPS, Target, cutover, rollback
from ..progress import Progress
from ..project import root
from ..testing.network import build_peer_image
from ..testing.peers import SubmitResult
from ..testing.rollout import (
    DNS_IP,
    PRODUCTION_PORT,
    SLOW_DOMAIN,
    Cell,
    Production,
    RolloutNet,
    build_spec_image,
    deploy_parallel_beside,
    open_rollout_net,
    parallel_ready,
    remove_tags,
    run_cell,
    variant,
)
from .results import BenchFailed, Figure, Results

REPO = "smtp-out-bench-prod"
PARALLEL = "smtp-out-bench-new"
PROBE_INTERVAL = 0.02


class Probe:
    """Greeting probes on a published port every 20 ms, in a thread, while the block runs;
    afterwards `outage` is the longest run of failed probes (first failure to the next 220)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[tuple[float, bool]] = []
        self.outage = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        began = None
        for t, ok in self.samples:
            if not ok and began is None:
                began = t
            elif ok and began is not None:
                self.outage, began = max(self.outage, t - began), None

    def _run(self) -> None:
        while not self._done.is_set():
            t = time.monotonic()
            self.samples.append((t, greet("127.0.0.1", self.port, timeout=1.0).banner.startswith("220")))
            time.sleep(max(0.0, PROBE_INTERVAL - (time.monotonic() - t)))


@dataclass(frozen=True)
class Round:
    cutover_outage: float
    rollback_outage: float
    rollback_seconds: float
    refused: int


def _quiet(line: str) -> None:
    """Progress of the rollout steps is not shown in the benchmark."""


def _must(outcome: RolloutOutcome) -> None:
    if outcome.exit_code:
        raise BenchFailed(outcome.text())


def _clear(client: docker.DockerClient, net: RolloutNet, prod: Production) -> None:
    prod.down()
    for c in client.containers.list(all=True, filters={"label": f"{ROLE}=parallel"}):
        c.remove(force=True)
    net.delivered.clear()


def _automatic_rollback(client: docker.DockerClient, net: RolloutNet, old: str, broken: str) -> float:
    """Production (the spec's image) holding deferred mail; a cutover to an image that exits on
    a queue holding deferred mail: the outage until the automatic rollback greets again."""
    client.images.get(old).tag(REPO, "latest")
    prod = net.production(REPO)
    target = Target(port=PRODUCTION_PORT, ca=net.material.ca, resolver=DNS_IP)
    try:
        prod.wait_serving(client)
        if net.submit("smtp-out", f"reader@{SLOW_DOMAIN}", extra=["--run", "bench-deferred"]).codes != [250]:
            raise BenchFailed("production refused the deferred message")
        container = client.containers.get(prod.container)

        def deferred() -> bool | None:
            queues = {m.get("queue_name") for m in listing.messages(container)}
            return True if "deferred" in queues else None

        poll(deferred, timeout=90, interval=0.5, seen=lambda: "the message is not in the deferred queue yet")
        deploy_parallel_beside(net, prod, PARALLEL, broken)
        with Probe(PRODUCTION_PORT) as probe:
            outcome = cutover(
                client, production=prod.container, parallel=PARALLEL, target=target, progress=_quiet
            )
        if not outcome.rolled_back_to or outcome.rollback_failed:
            raise BenchFailed(f"expected a verified automatic rollback: {outcome.text()[-500:]}")
        return probe.outage
    finally:
        _clear(client, net, prod)


def _matrix(client: docker.DockerClient, net: RolloutNet, old: str, p: Progress) -> list[Cell]:
    """Every cell of the fault matrix once, on one production: the cutover cut at each of its
    steps, and the rollback (after a cutover) cut at each of its steps; then `invoke rollback`."""
    client.images.get(old).tag(REPO, "latest")
    prod = net.production(REPO)
    target = Target(port=PRODUCTION_PORT, ca=net.material.ca, resolver=DNS_IP)
    cells = []
    try:
        prod.wait_serving(client)

        def ready() -> None:
            parallel_ready(net, prod, PARALLEL)

        def on_the_new_image() -> None:
            ready()
            _must(
                cutover(client, production=prod.container, parallel=PARALLEL, target=target, progress=_quiet)
            )

        for task, steps, prepare in (("cutover", CUTOVER_STEPS, ready),
                                   ("rollback", ROLLBACK_STEPS, on_the_new_image)):  # fmt: skip
            for step in range(1, steps + 1):
                for how in ("SIGINT", "SIGKILL"):
                    cell = run_cell(net, prod, root=root(), parallel=PARALLEL, step=step, how=how,
                                    steps=steps, ready=prepare, task=task)  # fmt: skip
                    problems = cell.problems(old, cell.accepted)
                    verdict = "recovered" if not problems else "; ".join(problems)[:300]
                    p(f"  fault matrix: {task} step {step} {how}: {verdict} ({cell.seconds:.0f}s)")
                    cells.append(cell)
    finally:
        _clear(client, net, prod)
    return cells


def _one_round(client: docker.DockerClient, net: RolloutNet, old: str) -> Round:
    """A compose-managed production on `old`, a parallel container, a cutover, a rollback."""
    client.images.get(old).tag(REPO, "latest")
    prod = net.production(REPO)
    target = Target(port=PRODUCTION_PORT, ca=net.material.ca, resolver=DNS_IP)
    try:
        prod.wait_serving(client)
        deploy_parallel_beside(net, prod, PARALLEL)
        sent: list[SubmitResult] = []

        def send() -> None:
            sent.append(
                net.submit_paced("smtp-out", "reader@example.com", count=150, interval=0.1, run="bench")
            )

        app = threading.Thread(target=send)
        app.start()
        with Probe(PRODUCTION_PORT) as cut:
            _must(
                cutover(client, production=prod.container, parallel=PARALLEL, target=target, progress=_quiet)
            )
        app.join(timeout=120)
        started = time.monotonic()
        with Probe(PRODUCTION_PORT) as back:
            _must(rollback(client, production=prod.container, target=target, progress=_quiet))
            seconds = time.monotonic() - started
        refused = sum(int(r["refused"]) + int(r["tempfailed"]) for r in sent[0].results) if sent else -1
        return Round(cut.outage, back.outage, seconds, refused)
    finally:
        _clear(client, net, prod)


def bench_rollout(
    client: docker.DockerClient, res: Results, repeats: int, workdir: Path, p: Progress
) -> None:
    images.build_smtp_out(client)
    build_peer_image(client)
    rounds, outages, own_outages = [], [], []
    with open_rollout_net(client, workdir / "rollout") as net:
        old = build_spec_image(client, f"{REPO}:old")  # what production runs before the first rollout
        broken = variant(client, f"{REPO}-broken:latest", refuse_deferred=True)
        try:
            for _ in range(repeats):
                rounds.append(_one_round(client, net, old))
            for _ in range(repeats):
                outages.append(_automatic_rollback(client, net, old, broken))
            ours = str(client.images.get(IMAGE).id)  # every rollout after the first goes back to ours
            for _ in range(repeats):
                own_outages.append(_automatic_rollback(client, net, ours, broken))
            cells = _matrix(client, net, old, p)
        finally:
            remove_tags(client, REPO)
            remove_tags(client, f"{REPO}-broken")
    outage = res.add(Figure("cutover: outage window (no 220 on 127.0.0.1:1587)", "s",
                            [r.cutover_outage for r in rounds], target="<= 2 s"), p)  # fmt: skip
    outage.met = outage.median <= 2.0
    res.add(Figure("rollback: outage window", "s", [r.rollback_outage for r in rounds]), p)
    seconds = [r.rollback_seconds for r in rounds]
    note = "drain, compose recreate, healthy, smoke, canary"
    took = res.add(
        Figure("rollback: command to verified production", "s", seconds, target="<= 5 s", note=note), p
    )
    took.met = took.median <= 5.0
    refused = [float(r.refused) for r in rounds]
    res.add(Figure("cutover: app attempts refused (1 message / 100 ms)", "count", refused), p)
    note = (
        "no 220 on 127.0.0.1:1587; back to the spec's image, which takes about 4 s itself to greet "
        "(it copies zoneinfo into the spool and runs postfix set-permissions on every start)"
    )
    auto = res.add(Figure("automatic rollback (cutover to an image failing on production's queue): outage",
                          "s", outages, target="<= 5 s", note=note), p)  # fmt: skip
    auto.met = auto.median <= 5.0
    note = "the same, back to this project's image (what every rollout after the first goes back to)"
    own = res.add(Figure("automatic rollback to this project's image: outage", "s", own_outages,
                         target="<= 5 s", note=note), p)  # fmt: skip
    own.met = own.median <= 5.0
    note = (f"cutover ({CUTOVER_STEPS} steps) and rollback ({ROLLBACK_STEPS} steps), each step cut by SIGINT"
            " to the group and by SIGKILL to the task, then `invoke rollback`")  # fmt: skip
    res.add(Figure("fault matrix: cells", "count", [float(len(cells))], note=note), p)
    ok = res.add(Figure("fault matrix: cells recovered", "count",
                        [float(sum(1 for c in cells if not c.problems(old, c.accepted)))],
                        target=f"= {len(cells)}"), p)  # fmt: skip
    ok.met = ok.median == len(cells)
    bad = float(sum(c.lost + c.duplicated + c.unsigned for c in cells))
    lost = res.add(
        Figure("fault matrix: messages lost, duplicated or unsigned", "count", [bad], target="= 0"), p
    )
    lost.met = lost.median == 0
