"""Docker networks for the tests, the config test and the benchmarks, and the sweep of what
this package left behind (everything labelled smtp-out.tools)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker
import docker.errors
from docker.models.networks import Network
from docker.types import IPAMConfig, IPAMPool

from .. import LABEL
from ..errors import SmtpOutError


class NoFreeSubnet(SmtpOutError):
    """Every candidate subnet is taken by another Docker network."""


def create_internal_network(client: docker.DockerClient, name: str, subnet: str) -> Network:
    """An --internal bridge network with a fixed subnet, labelled for the sweep."""
    ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)])
    return client.networks.create(name, driver="bridge", internal=True, ipam=ipam, labels={LABEL: "1"})


@contextlib.contextmanager
def internal_network(client: docker.DockerClient, name: str, subnet: str) -> Iterator[Network]:
    """An --internal network with a fixed subnet; removed afterwards with its containers."""
    network = create_internal_network(client, name, subnet)
    try:
        yield network
    finally:
        remove_network(client, network)


@contextlib.contextmanager
def internal_network_anywhere(
    client: docker.DockerClient, name: str, candidates: list[str]
) -> Iterator[Network]:
    """An --internal network on the first candidate subnet that no network uses; a subnet taken
    between the look and the create (by another run) moves on to the next candidate."""
    network = None
    used = subnets_in_use(client)
    for subnet in (s for s in candidates if s not in used):
        try:
            network = create_internal_network(client, name, subnet)
            break
        except docker.errors.APIError as exc:
            if "overlap" not in str(exc).lower():
                raise
    if network is None:
        raise NoFreeSubnet(
            f"no free subnet for network {name} among {candidates[0]} .. {candidates[-1]}: "
            "remove unused Docker networks (invoke remove-test-leftovers) and try again"
        )
    try:
        yield network
    finally:
        remove_network(client, network)


def subnets_in_use(client: docker.DockerClient) -> set[str]:
    return {
        str(cfg.get("Subnet"))
        for n in client.networks.list()
        for cfg in (n.attrs.get("IPAM", {}).get("Config") or [])
    }


def remove_network(client: docker.DockerClient, network: Network) -> None:
    """Remove the network and the containers on it; one already gone (swept by `invoke remove-test-leftovers`
    or removed by hand) is not an error."""
    try:
        network.reload()
    except docker.errors.NotFound:
        return
    for container_id in network.attrs.get("Containers") or {}:  # ids: no per-container inspect to race
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(container_id, force=True, v=True)
    with contextlib.suppress(docker.errors.APIError):
        network.remove()


def remove_leftovers(client: docker.DockerClient) -> int:
    """Remove containers and networks this package labelled and left behind; returns the count."""
    count = 0
    # ignore_removed: a container that goes away between the listing and its inspection (an
    # auto-removed one, or one another fixture is removing) is not an error.
    for c in client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True):
        with contextlib.suppress(docker.errors.APIError):
            c.remove(force=True, v=True)
            count += 1
    for n in client.networks.list(filters={"label": LABEL}):
        with contextlib.suppress(docker.errors.APIError):
            n.remove()
            count += 1
    return count
