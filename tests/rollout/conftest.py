"""The rollout suite: a compose-managed production stand-in on a hermetic network.

The network is built once for the package; each module starts its own production. Images: the
relay built from this checkout (`smtp-out`, the new image), and the "old" image production runs
at first: the spec's image as written (src/smtp_out/testing/spec-image, pinned as ours is),
tagged <REPO>:latest as its compose file names, mounted as the spec's compose mounts it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker
import pytest

from smtp_out.engine import images
from smtp_out.ops.rollout.common import ROLE
from smtp_out.testing.network import build_peer_image
from smtp_out.testing.rollout import Production, RolloutNet, build_spec_image, open_rollout_net, remove_tags

pytestmark = pytest.mark.docker

#: The repository production's compose file names (`image:`), for the tests only.
REPO = "smtp-out-it"


@pytest.fixture(scope="package")
def rollout_net(
    client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RolloutNet]:
    images.build_smtp_out(client)
    build_peer_image(client)
    with open_rollout_net(client, tmp_path_factory.mktemp("rollout")) as net:
        yield net


@pytest.fixture(scope="package")
def old_image(client: docker.DockerClient, rollout_net: RolloutNet) -> Iterator[str]:
    """The image production runs before the rollout: the spec's image as written."""
    image_id = build_spec_image(client, f"{REPO}:old")
    yield image_id
    remove_tags(client, REPO)


def reset_tags(client: docker.DockerClient, old_image: str) -> None:
    """<REPO>:latest names the old image again, and no candidate or rollback tag is left over."""
    remove_tags(client, REPO, keep=(f"{REPO}:old",))
    client.images.get(old_image).tag(REPO, "latest")


@contextlib.contextmanager
def production_on_old_image(
    client: docker.DockerClient, net: RolloutNet, old_image: str
) -> Iterator[Production]:
    """A module's production: compose on the old image, serving, the sink emptied; afterwards
    `docker-compose down` and every parallel container removed."""
    reset_tags(client, old_image)
    net.delivered.clear()
    prod = net.production(REPO)
    prod.wait_serving(client)
    try:
        yield prod
    finally:
        prod.down()
        for c in client.containers.list(all=True, filters={"label": f"{ROLE}=parallel"}):
            c.remove(force=True)


@pytest.fixture(autouse=True)
def slow_mx_down(rollout_net: RolloutNet) -> None:
    """Every test starts with the slow MX down, so that its mail waits in a queue (a test that
    needs it up starts it, and may leave it running)."""
    rollout_net.slow_sink.reload()
    if rollout_net.slow_sink.status == "running":
        rollout_net.slow_sink.stop(timeout=1)
