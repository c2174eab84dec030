"""The hermetic test network, built once for this suite; a fresh smtp-out (and queue) per test.

Set SMTP_OUT_KEEP=1 (invoke integration-test --keep) to leave the network up afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from smtp_out.engine import images
from smtp_out.testing.network import TestNet, build_peer_image, open_testnet

pytestmark = pytest.mark.docker


@pytest.fixture(scope="package")
def suite_net(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNet]:
    """The test network, built once for this package and torn down when its tests are done, so
    that later Docker tests in the same run can use the production subnet (10.5.5.0/24) again."""
    images.build_smtp_out(client)
    build_peer_image(client)
    keep = os.environ.get("SMTP_OUT_KEEP") == "1"
    workdir = tmp_path_factory.mktemp("testnet")
    with open_testnet(client, workdir, keep=keep) as net:
        yield net
        if keep:
            print(f"\nkept the test network; workdir {workdir}; remove with: invoke remove-test-leftovers")


@pytest.fixture
def net(suite_net: TestNet, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestNet]:
    """The suite's network with an empty sink (up) and a fresh smtp-out on a fresh queue."""
    suite_net.sink.reload()
    if suite_net.sink.status != "running":
        suite_net.sink_up()
    suite_net.clear_sink()
    suite_net.start_smtp_out(spool=tmp_path / "spool")
    yield suite_net
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print("\n" + suite_net.all_logs())
    if os.environ.get("SMTP_OUT_KEEP") != "1":
        suite_net.remove_smtp_out()
