"""Fixtures for the Docker-backed tests: the real image on a real engine, hermetic networks.

These tests never skip: without a Docker engine they fail with the reason.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container
from docker.models.networks import Network

from smtp_out import IMAGE
from smtp_out.engine import images
from smtp_out.engine.containers import address, logs, unique
from smtp_out.engine.networks import internal_network
from smtp_out.material import Material
from smtp_out.ops.launch import SmtpOutOptions, run_smtp_out, wait_for_banner

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def image(client: docker.DockerClient) -> str:
    """The smtp-out image, built once per test session from docker-services/smtp-out."""
    images.build_smtp_out(client)
    return IMAGE


@pytest.fixture(scope="session")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    return Material.create(tmp_path_factory.mktemp("material"))


_subnets = itertools.count(10)


@pytest.fixture
def network(client: docker.DockerClient) -> Iterator[Callable[..., Network]]:
    """Factory: an --internal network; by default in 172.30.0.0/16 (inside mynetworks,
    outside OpenDKIM's shipped TrustedHosts), so the host talks to containers as x.x.x.1."""
    stack = contextlib.ExitStack()

    def make(subnet: str | None = None) -> Network:
        subnet = subnet or f"172.30.{next(_subnets)}.0/24"
        return stack.enter_context(internal_network(client, unique("smtp-out-test"), subnet))

    with stack:
        yield make


class Started:
    """A running smtp-out container and the address the host reaches it at."""

    def __init__(self, container: Container, host: str) -> None:
        self.container = container
        self.host = host


@pytest.fixture
def smtp_out(
    client: docker.DockerClient,
    image: str,
    material: Material,
    network: Callable[..., Network],
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Started]]:
    """Factory: start smtp-out on an internal network and wait for its 220 greeting.
    Keyword arguments go to SmtpOutOptions; wait=False returns without waiting.
    Containers are removed afterwards; their logs are printed when the test failed."""
    started: list[Container] = []

    def start(wait: bool = True, net: Network | None = None, **kw: object) -> Started:
        net = net or network()
        opts = SmtpOutOptions(image=image, network=net.name, material=kw.pop("material", material), **kw)  # type: ignore[arg-type]
        container = run_smtp_out(client, opts)
        started.append(container)
        host = address(container, net.name)
        if wait:
            wait_for_banner(container, host)
        return Started(container, host)

    yield start
    rep = getattr(request.node, "rep_call", None)
    for c in started:
        if rep is not None and rep.failed:
            with contextlib.suppress(docker.errors.APIError):
                print(f"\n--- logs of {c.name} ---\n{logs(c)}")
        with contextlib.suppress(docker.errors.APIError):
            c.remove(force=True, v=True)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    d = tmp_path / "spool"
    d.mkdir()
    return d
