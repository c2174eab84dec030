"""Rollout, part 3: the fault matrix, black-box. The cutover runs as an operator runs it (`invoke
cutover`, a process group of its own), and is cut when the progress line of a step appears: by
SIGINT to its process group (Ctrl-C in a terminal, a dropped SSH session: docker-compose dies
too) or by SIGKILL to the task alone (an OOM kill). Then the one recovery command, `invoke
rollback`; and the same for `invoke rollback` itself, cut at each of its steps after a cutover,
then run again. Each cell: production serving and accepting mail on the image the README names for it
(the old one, for every cell: recovery rolls back), `docker-compose up -d` a no-op, no drain,
quiesce or hold left behind, and of the app's live stream nothing lost, duplicated or unsigned.

One production (compose, the spec's image) serves the whole matrix: recovery leaves it as it
was; a parallel container is deployed again when a cell stopped it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import docker
import pytest

from smtp_out.ops.rollout.cutover import CUTOVER_STEPS, ROLLBACK_STEPS, Target, cutover
from smtp_out.testing.rollout import (
    CELL_COUNT,
    DNS_IP,
    PRODUCTION_PORT,
    Production,
    RolloutNet,
    parallel_ready,
    run_cell,
)

from ..helpers import REPO_ROOT
from .conftest import REPO, production_on_old_image

pytestmark = pytest.mark.docker

PARALLEL = "smtp-out-it-fault"
CELLS = [(step, how) for step in range(1, CUTOVER_STEPS + 1) for how in ("SIGINT", "SIGKILL")]
ROLLBACK_CELLS = [(step, how) for step in range(1, ROLLBACK_STEPS + 1) for how in ("SIGINT", "SIGKILL")]


@dataclass
class Matrix:
    net: RolloutNet
    production: Production
    old: str
    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


@pytest.fixture(scope="module")
def matrix(client: docker.DockerClient, rollout_net: RolloutNet, old_image: str) -> Iterator[Matrix]:
    with production_on_old_image(client, rollout_net, old_image) as prod:
        m = Matrix(rollout_net, prod, old_image)
        yield m
        took = time.monotonic() - m.started
        print(f"\nfault matrix: {len(m.seconds)} cells in {took:.0f}s: "
              + ", ".join(f"{k} {v:.0f}s" for k, v in m.seconds.items()))  # fmt: skip


@pytest.mark.parametrize(("step", "how"), CELLS, ids=[f"step{s}-{h}" for s, h in CELLS])
def test_a_cutover_cut_at_any_step_is_recovered_by_invoke_rollback(
    client: docker.DockerClient, matrix: Matrix, step: int, how: str
) -> None:
    m = matrix
    cell = run_cell(
        m.net, m.production, root=REPO_ROOT, parallel=PARALLEL, step=step, how=how, steps=CUTOVER_STEPS,
        ready=lambda: parallel_ready(m.net, m.production, PARALLEL),
    )  # fmt: skip
    m.seconds[f"{step}-{how}"] = cell.seconds
    problems = cell.problems(m.old, CELL_COUNT)
    assert not problems, "\n".join([*problems, "--- the cut cutover printed:", cell.cut_output[-3000:]])
    assert client.images.get(f"{REPO}:latest").id == m.old, "the compose tag names the old image"


@pytest.mark.parametrize(("step", "how"), ROLLBACK_CELLS, ids=[f"step{s}-{h}" for s, h in ROLLBACK_CELLS])
def test_a_rollback_cut_at_any_step_is_finished_by_invoke_rollback_again(
    client: docker.DockerClient, matrix: Matrix, step: int, how: str
) -> None:
    m = matrix

    def on_the_new_image() -> None:
        parallel_ready(m.net, m.production, PARALLEL)
        target = Target(port=PRODUCTION_PORT, ca=m.net.material.ca, resolver=DNS_IP)
        done = cutover(client, production=m.production.container, parallel=PARALLEL, target=target,
                       progress=lambda _: None)  # fmt: skip
        assert done.exit_code == 0, done.text()

    cell = run_cell(
        m.net, m.production, root=REPO_ROOT, parallel=PARALLEL, step=step, how=how, steps=ROLLBACK_STEPS,
        ready=on_the_new_image, task="rollback",
    )  # fmt: skip
    m.seconds[f"rollback-{step}-{how}"] = cell.seconds
    problems = cell.problems(m.old, CELL_COUNT)
    assert not problems, "\n".join([*problems, "--- the cut rollback printed:", cell.cut_output[-3000:]])
    assert client.images.get(f"{REPO}:latest").id == m.old, "the compose tag names the old image"
