"""Rollout, part 2: cutover and rollback under live traffic, with compose kept the source of truth.

The app submits one message every 100 ms by the service name `smtp-out` throughout, retrying on
4xx and refused connections as a real client would. Both queues hold deferred mail (to a slow MX
that is down) when the rollout starts. Afterwards: every message that got a 250 is delivered
exactly once and signed, the deferred mail of both queues is delivered, and `docker-compose up -d`
changes nothing.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest

from smtp_out.dkim import verify
from smtp_out.engine.containers import exec_text
from smtp_out.testing.peers import SubmitResult
from smtp_out.testing.rollout import (
    DNS_IP,
    SLOW_DOMAIN,
    Production,
    RolloutNet,
    deploy_parallel_beside,
    variant,
)
from smtp_out.testing.sink import SinkMessage

from ..helpers import invoke
from .conftest import REPO, reset_tags

pytestmark = pytest.mark.docker

PARALLEL = "smtp-out-it-next"
#: Messages the app sends during a rollout, one every INTERVAL seconds.
COUNT, INTERVAL = 160, 0.1


@dataclass
class Scene:
    net: RolloutNet
    production: Production
    deferred: set[str]  # X-Test-Run/Seq of the mail waiting for the slow MX, in both queues


def _run_id(msg: SinkMessage) -> str:
    for line in msg.raw.split(b"\n"):
        if line.lower().startswith(b"x-test-run:"):
            return line.split(b":", 1)[1].strip().decode()
    return ""


def _set_the_scene(client: docker.DockerClient, net: RolloutNet, old: str, new_image: str, tag: str) -> Scene:
    """Production (compose, old image) and the parallel container (new_image), each holding
    deferred mail; the slow MX down, the sinks empty."""
    net.slow_sink.stop(timeout=1)
    net.delivered.clear()
    net.delivered_slowly.clear()
    reset_tags(client, old)
    prod = net.production(REPO)
    prod.wait_serving(client)
    deploy_parallel_beside(net, prod, PARALLEL, new_image)
    deferred = set()
    for host, n in (("smtp-out", 3), (PARALLEL, 2)):
        run = f"{tag}-deferred-{host}"
        assert net.submit(host, f"reader@{SLOW_DOMAIN}", count=n, extra=["--run", run]).codes == [250] * n
        deferred |= {f"{run}/{i}" for i in range(n)}
    net.delivered.clear()
    net.delivered_slowly.clear()
    return Scene(net, prod, deferred)


@pytest.fixture
def scene(client: docker.DockerClient, rollout_net: RolloutNet, old_image: str) -> Iterator[Scene]:
    s = _set_the_scene(client, rollout_net, old_image, "smtp-out", "good")
    yield s
    s.production.down()
    for c in client.containers.list(all=True, filters={"label": "smtp-out.rollout=parallel"}):
        c.remove(force=True)


class Traffic:
    """The app's paced submissions, in a thread, while the rollout runs."""

    def __init__(self, net: RolloutNet, run: str) -> None:
        self.run, self.result = run, SubmitResult(0, 0, [], [])
        self.thread = threading.Thread(target=self._send, args=(net,), daemon=True)
        self.thread.start()

    def _send(self, net: RolloutNet) -> None:
        self.result = net.submit_paced(
            "smtp-out", "reader@example.com", count=COUNT, interval=INTERVAL, run=self.run
        )

    def finish(self) -> SubmitResult:
        self.thread.join(timeout=COUNT * INTERVAL + 180)
        assert not self.thread.is_alive(), "the app's submissions did not finish"
        return self.result

    @staticmethod
    def report(result: SubmitResult) -> str:
        retried = [r for r in result.results if r["attempts"] > 1]
        outage = max((r["done"] - r["first"] for r in retried), default=0.0)
        refused = sum(r["refused"] + r["tempfailed"] for r in result.results)
        return f"{refused} refused attempts, longest outage {outage:.2f}s"


def _delivered_once_and_signed(scene: Scene, result: SubmitResult) -> None:
    """Every message that got a 250 arrived exactly once, signed; and so did the deferred mail."""
    accepted = {f"{r['seq']}" for r in result.results if r["code"] == 250}
    assert len(accepted) == COUNT, [r for r in result.results if r["code"] != 250][:3]
    run = (result.results and str(result.results[0].get("run", ""))) or ""
    del run
    fast = scene.net.delivered.wait_for_received(COUNT, timeout=120)
    scene.net.slow_sink.start()
    # the spec's image retries deferred mail after 5 minutes at the earliest: flush it, as an operator
    # would, until the slow MX (just started) takes it
    prod = scene.net.client.containers.get(scene.production.container)
    deadline = time.monotonic() + 120
    while len(scene.net.delivered_slowly.received()) < len(scene.deferred) and time.monotonic() < deadline:
        exec_text(prod, "postqueue -f")
        time.sleep(3)
    slow = scene.net.delivered_slowly.wait_for_received(len(scene.deferred), timeout=10)
    txt = scene.net.material.dkim.txt_value
    for msgs in (fast, slow):
        for m in msgs:
            assert verify(m.raw, txt), f"unsigned or badly signed: {m.raw[:200]!r}"
    keys = sorted(
        f"{_run_id(m)}/{m.header_seq}" for m in itertools.chain(fast, slow) if m.header_seq is not None
    )
    twice = sorted({k for k in keys if keys.count(k) > 1})
    assert not twice, f"delivered twice: {twice}"
    assert {k for k in keys if "-deferred-" in k} == scene.deferred
    assert sorted(k.split("/")[1] for k in keys if "-deferred-" not in k) == sorted(accepted)


def _compose_changes_nothing(client: docker.DockerClient, production: Production) -> None:
    before = client.containers.get(production.container)
    production.up()
    after = client.containers.get(production.container)
    assert (after.id, after.attrs["Image"]) == (before.id, before.attrs["Image"])


def test_cutover_under_live_traffic_then_rollback_and_cleanup(
    client: docker.DockerClient, scene: Scene, old_image: str
) -> None:
    prod_before = client.containers.get(scene.production.container)
    new_image = client.images.get("smtp-out").id
    traffic = Traffic(scene.net, "cutover")
    r = invoke("cutover", "--production", scene.production.container, "--parallel", PARALLEL,
               "--ca", str(scene.net.material.ca), "--resolver", DNS_IP, timeout=300)  # fmt: skip
    result = traffic.finish()
    print(f"\ncutover: {Traffic.report(result)}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "=== cutover: done ===" in r.stdout
    assert [ln.split("]")[0] for ln in r.stderr.splitlines() if ln.startswith("cutover [")] == [
        f"cutover [{n}/14" for n in range(1, 15)
    ]
    prod = client.containers.get(scene.production.container)
    assert prod.id != prod_before.id and prod.attrs["Image"] == new_image
    assert client.images.get(f"{REPO}:latest").id == new_image, "the compose tag followed the cutover"
    assert client.containers.get(PARALLEL).status == "exited"
    _delivered_once_and_signed(scene, result)
    _compose_changes_nothing(client, scene.production)

    # rollback: back to the old image, queue intact, verified the same way
    scene.net.delivered.clear()
    assert scene.net.submit(
        "smtp-out", f"reader@{SLOW_DOMAIN}", extra=["--run", "before-rollback"]
    ).codes == [250]
    back = invoke("rollback", "--production", scene.production.container, "--ca", str(scene.net.material.ca),
                  "--resolver", DNS_IP, timeout=300)  # fmt: skip
    assert back.returncode == 0, back.stdout + back.stderr
    prod = client.containers.get(scene.production.container)
    assert prod.attrs["Image"] == old_image
    (msg,) = [
        m
        for m in scene.net.delivered_slowly.wait_for_received(len(scene.deferred) + 1)
        if _run_id(m) == "before-rollback"
    ]
    assert verify(msg.raw, scene.net.material.dkim.txt_value)
    _compose_changes_nothing(client, scene.production)

    # cleanup: the stopped parallel container and its (empty) queue go; rollback points stay
    queue_new = f"{scene.production.queue}-new"
    done = invoke("rollout-cleanup", "--production", scene.production.container, "--keep", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"removed container {PARALLEL}" in done.stdout
        and f"removed queue directory {queue_new}" in done.stdout
    )
    assert "kept rollback point rollback-" in done.stdout
    assert not client.containers.list(all=True, filters={"name": PARALLEL})


def test_a_cutover_to_an_image_that_cannot_run_on_the_production_queue_rolls_back_by_itself(
    client: docker.DockerClient, rollout_net: RolloutNet, old_image: str
) -> None:
    broken = variant(client, "smtp-out-it-broken:latest", refuse_deferred=True)
    scene = _set_the_scene(client, rollout_net, old_image, broken, "broken")
    try:
        traffic = Traffic(rollout_net, "failed-cutover")
        r = invoke("cutover", "--production", scene.production.container, "--parallel", PARALLEL,
                   "--ca", str(rollout_net.material.ca), "--resolver", DNS_IP, timeout=300)  # fmt: skip
        result = traffic.finish()
        print(f"\nfailed cutover: {Traffic.report(result)}")
        assert r.returncode == 1, r.stdout + r.stderr
        verdict = r.stdout.strip().splitlines()[-1]
        assert verdict.startswith("=== cutover FAILED at verify: container ") and "cannot read" in verdict, (
            verdict
        )
        assert f"rolled back to {REPO}:rollback-" in verdict and verdict.endswith(", verified ===")
        prod = client.containers.get(scene.production.container)
        assert prod.attrs["Image"] == old_image and prod.status == "running"
        assert client.images.get(f"{REPO}:latest").id == old_image
        _delivered_once_and_signed(scene, result)
        _compose_changes_nothing(client, scene.production)
    finally:
        scene.production.down()
        for c in client.containers.list(all=True, filters={"label": "smtp-out.rollout=parallel"}):
            c.remove(force=True)
        client.images.remove("smtp-out-it-broken:latest", force=True)
