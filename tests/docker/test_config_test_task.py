"""invoke config-test when other Docker networks occupy the subnets it would use."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import docker
import pytest
from docker.models.networks import Network

from smtp_out.engine.containers import unique
from smtp_out.engine.networks import create_internal_network, remove_network

from ..helpers import invoke

pytestmark = pytest.mark.docker


@pytest.fixture
def occupied(client: docker.DockerClient) -> Iterator[Callable[[str], Network]]:
    """Factory: an --internal network squatting on a subnet, removed afterwards."""
    made: list[Network] = []

    def occupy(subnet: str) -> Network:
        made.append(create_internal_network(client, unique("smtp-out-squatter"), subnet))
        return made[-1]

    yield occupy
    for n in made:
        remove_network(client, n)


def test_config_test_moves_past_subnets_that_overlap_other_networks(
    image: str, occupied: Callable[[str], Network]
) -> None:
    occupied("172.31.192.0/19")  # overlaps 172.31.200-223.0/24 without naming any of them
    r = invoke("config-test", "--no-build")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ALL PASSED" in r.stdout


def test_config_test_with_no_free_subnet_says_so_in_one_line(
    image: str, occupied: Callable[[str], Network]
) -> None:
    occupied("172.31.0.0/16")
    r = invoke("config-test", "--no-build")
    assert r.returncode == 1
    assert r.stdout == ""
    assert re.fullmatch(
        r"ERROR: no free subnet for network smtp-out-config-\w+ "
        r"among 172\.31\.200\.0/24 \.\. 172\.31\.254\.0/24: "
        r"remove unused Docker networks \(invoke remove-test-leftovers\) and try again\n",
        r.stderr,
    )
