"""The hermetic test network, built once per session; a fresh smtp-out (and queue) per test.

Set SMTP_OUT_KEEP=1 (invoke integration-test --keep) to leave the network up afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from smtp_out import IMAGE, engine, images
from smtp_out.containers import remove_leftovers
from smtp_out.testnet import TestNet, build_peer_image, open_testnet

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def client() -> docker.DockerClient:
    c = engine.client()  # no engine: the tests fail with the reason, never skip
    remove_leftovers(c)
    return c


@pytest.fixture(scope="session")
def session_net(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestNet]:
    images.build_all(client, lambda line: None, [s for s in images.discover() if s.tag == IMAGE])
    build_peer_image(client)
    keep = os.environ.get("SMTP_OUT_KEEP") == "1"
    workdir = tmp_path_factory.mktemp("testnet")
    with open_testnet(client, workdir, keep=keep) as net:
        yield net
        if keep:
            print(f"\nkept the test network; workdir {workdir}; remove with: invoke clean")


@pytest.fixture
def net(session_net: TestNet, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestNet]:
    """The session's network with an empty sink (up) and a fresh smtp-out on a fresh queue."""
    session_net.sink.reload()
    if session_net.sink.status != "running":
        session_net.sink_up()
    session_net.clear_sink()
    session_net.start_smtp_out(spool=tmp_path / "spool")
    yield session_net
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print("\n" + session_net.all_logs())
    if os.environ.get("SMTP_OUT_KEEP") != "1":
        session_net.remove_smtp_out()
