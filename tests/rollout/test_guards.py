"""Rollout, part 4: what the cutover checks before it touches production, and what it does when
docker-compose itself fails; held mail through a cutover; cleanup and private records.

Production: compose, the spec's image. A docker-compose that fails is put first on the task's
PATH (the task runs compose by name, as an operator's shell would).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from smtp_out.dkim import verify
from smtp_out.engine.containers import exec_text
from smtp_out.ops.rollout.journal import Journal
from smtp_out.ops.rollout.points import state_dir
from smtp_out.testing.rollout import (
    DNS_IP,
    SLOW_DOMAIN,
    Production,
    RolloutNet,
    Stream,
    leftovers,
    parallel_ready,
    run_of,
)
from smtp_out.testing.sink import SinkMessage

from ..helpers import invoke
from .conftest import production_on_old_image

pytestmark = pytest.mark.docker

PARALLEL = "smtp-out-it-guard"
REAL_COMPOSE = "/usr/bin/docker-compose"


@pytest.fixture(scope="module")
def production(client: docker.DockerClient, rollout_net: RolloutNet, old_image: str) -> Iterator[Production]:
    with production_on_old_image(client, rollout_net, old_image) as prod:
        yield prod


def _parallel(client: docker.DockerClient, net: RolloutNet, prod: Production) -> Container:
    parallel_ready(net, prod, PARALLEL)
    return client.containers.get(PARALLEL)


def _fake_compose(folder: Path, script: str) -> dict[str, str]:
    """An environment whose PATH finds `script` as docker-compose first."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "docker-compose"
    path.write_text("#!/bin/bash\n" + script)
    path.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


def _cutover(net: RolloutNet, prod: Production, env: dict[str, str] | None = None) -> tuple[int, str]:
    r = invoke("cutover", "--production", prod.container, "--parallel", PARALLEL,
               "--ca", str(net.material.ca), "--resolver", DNS_IP, env=env, timeout=300)  # fmt: skip
    return r.returncode, r.stdout + r.stderr


def _at_rest(client: docker.DockerClient, name: str) -> None:
    assert leftovers(client.containers.get(name)) == [], name


def _unchanged(client: docker.DockerClient, prod: Production, before: tuple[str, str, str]) -> None:
    c = client.containers.get(prod.container)
    assert (c.id, c.attrs["Image"], c.attrs["State"]["StartedAt"]) == before, "production was touched"
    assert client.containers.get(PARALLEL).status == "running", "the parallel container was touched"
    _at_rest(client, prod.container)
    _at_rest(client, PARALLEL)


def _snapshot(client: docker.DockerClient, prod: Production) -> tuple[str, str, str]:
    c = client.containers.get(prod.container)
    return str(c.id), str(c.attrs["Image"]), str(c.attrs["State"]["StartedAt"])


def test_a_broken_docker_compose_is_refused_before_anything_changes(
    client: docker.DockerClient, rollout_net: RolloutNet, production: Production, tmp_path: Path
) -> None:
    _parallel(client, rollout_net, production)
    before = _snapshot(client, production)
    env = _fake_compose(tmp_path / "bin", 'echo "docker-compose: cannot run" >&2\nexit 1\n')
    code, out = _cutover(rollout_net, production, env)
    assert code == 1, out
    assert "cutover FAILED at docker-compose resolves" in out and "(refused: nothing was changed)" in out, out
    _unchanged(client, production, before)
    assert not list(state_dir(production.service).glob("rollback-*.json")), "no rollback point was recorded"
    back = invoke("rollback", "--production", production.container)
    assert back.returncode == 0 and "nothing to recover" in back.stdout, back.stdout + back.stderr


def test_a_compose_variable_that_moves_the_queue_is_refused_before_anything_changes(
    client: docker.DockerClient, rollout_net: RolloutNet, production: Production, tmp_path: Path
) -> None:
    _parallel(client, rollout_net, production)
    before = _snapshot(client, production)
    other = tmp_path / "another-queue"
    other.mkdir()
    code, out = _cutover(rollout_net, production, {"POSTFIX_DIR_ROOT": str(other)})
    assert code == 1, out
    assert "would recreate production on other folders: /var/spool/postfix" in out, out
    assert "(refused: nothing was changed)" in out
    _unchanged(client, production, before)
    assert not any(other.iterdir())


def test_compose_failing_up_after_stopping_production_is_recovered_from_the_record(
    client: docker.DockerClient, rollout_net: RolloutNet, production: Production, tmp_path: Path,
    old_image: str,
) -> None:  # fmt: skip
    _parallel(client, rollout_net, production)
    script = (
        'for a in "$@"; do\n'
        '  if [ "$a" = up ]; then\n'
        f"    docker stop -t 10 {production.container} >/dev/null\n"
        '    echo "ERROR: for smtp-out  Cannot start service: failed" >&2\n'
        "    exit 1\n"
        "  fi\n"
        "done\n"
        f'exec {REAL_COMPOSE} "$@"\n'
    )
    env = _fake_compose(tmp_path / "bin", script)
    stream = Stream(rollout_net, "compose-up-fails")
    code, out = _cutover(rollout_net, production, env)
    result = stream.finish()
    assert code == 1, out
    verdict = [ln for ln in out.splitlines() if ln.startswith("=== cutover")][-1]
    assert verdict.startswith("=== cutover FAILED at docker-compose recreates"), out
    assert verdict.endswith(", verified ==="), out
    assert "recreating" in out and "from the record" in out, out
    prod = client.containers.get(production.container)
    assert prod.status == "running" and prod.attrs["Image"] == old_image
    before = prod.id
    production.up()  # the real docker-compose adopts what the record made
    assert client.containers.get(production.container).id == before, "docker-compose up -d recreated it"
    _at_rest(client, production.container)
    journal = Journal.load(state_dir(production.service))
    assert journal is not None and not journal.interrupted
    accepted = {r["seq"] for r in result.results if r["code"] == 250}
    assert len(accepted) == len(result.results), [r for r in result.results if r["code"] != 250][:3]
    got = [m for m in rollout_net.delivered.wait_for_received(0) if run_of(m.raw) == "compose-up-fails"]
    import time

    deadline = time.monotonic() + 60
    while len(got) < len(accepted) and time.monotonic() < deadline:
        time.sleep(0.2)
        got = [m for m in rollout_net.delivered.received() if run_of(m.raw) == "compose-up-fails"]
    assert sorted(-1 if m.header_seq is None else m.header_seq for m in got) == sorted(accepted), (
        "lost or duplicated"
    )
    assert all(verify(m.raw, rollout_net.material.dkim.txt_value) for m in got)


def test_held_mail_stays_held_through_a_cutover_and_records_are_private(
    client: docker.DockerClient, rollout_net: RolloutNet, production: Production
) -> None:
    par = _parallel(client, rollout_net, production)
    sent = rollout_net.submit(PARALLEL, f"reader@{SLOW_DOMAIN}", extra=["--run", "operator-held"])
    assert sent.codes == [250]
    exec_text(par, "postsuper -h ALL")  # the operator held it
    code, out = _cutover(rollout_net, production)
    assert code == 0, out
    prod = client.containers.get(production.container)
    _, listing = exec_text(prod, "postqueue -j")
    held = [ln for ln in listing.splitlines() if '"queue_name": "hold"' in ln]
    assert len(held) == 1 and f"reader@{SLOW_DOMAIN}" in held[0], listing + out
    rollout_net.slow_sink.start()
    try:
        exec_text(prod, "postqueue -f")
        import time

        time.sleep(2)
        assert not [m for m in rollout_net.delivered_slowly.received() if run_of(m.raw) == "operator-held"]
    finally:
        rollout_net.slow_sink.stop(timeout=1)

    folder = state_dir(production.service)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    private = [*folder.glob("rollback-*.json"), *folder.glob("queue-*.tar.gz"), folder / "journal.json"]
    assert len(private) >= 3
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in private} == {p.name: 0o600 for p in private}

    # cleanup never deletes the newest rollback point
    r = invoke("rollout-cleanup", "--production", production.container, "--keep", "0")
    assert r.returncode == 2 and "newest rollback point always stays" in r.stdout + r.stderr
    assert list(folder.glob("rollback-*.json"))
    r = invoke("rollout-cleanup", "--production", production.container, "--keep", "1")
    assert r.returncode == 0 and "kept rollback point rollback-" in r.stdout, r.stdout + r.stderr

    # back to the old image: still held there too
    back = invoke("rollback", "--production", production.container, "--ca", str(rollout_net.material.ca),
                  "--resolver", DNS_IP, timeout=300)  # fmt: skip
    assert back.returncode == 0, back.stdout + back.stderr
    assert "N/A" in back.stdout and "no canary hold" in back.stdout, back.stdout
    _, listing = exec_text(client.containers.get(production.container), "postqueue -j")
    assert len([ln for ln in listing.splitlines() if '"queue_name": "hold"' in ln]) == 1
    exec_text(client.containers.get(production.container), "postsuper -d ALL hold")


def test_rollback_brings_back_production_whose_container_is_gone(
    client: docker.DockerClient, rollout_net: RolloutNet, production: Production, tmp_path: Path,
    old_image: str,
) -> None:  # fmt: skip
    """Finding 4: a compose run that died half-way leaves no production container. `invoke
    rollback` finds the rollout from --compose-dir (or from its record), brings production back
    on the old image on the same queue, and the mail waiting in that queue is delivered."""
    import time

    _parallel(client, rollout_net, production)
    code, out = _cutover(rollout_net, production)
    assert code == 0, out
    sent = rollout_net.submit(production.container, f"reader@{SLOW_DOMAIN}", extra=["--run", "gone"])
    assert sent.codes == [250]  # it waits in production's queue: the slow MX is down
    client.containers.get(production.container).remove(force=True)

    nowhere = {"XDG_STATE_HOME": str(tmp_path / "no-record")}  # no record of where the rollout ran
    lost = invoke("rollout-status", "--production", production.container, env=nowhere)
    assert lost.returncode == 1, lost.stdout + lost.stderr
    assert "--compose-dir" in lost.stdout + lost.stderr  # an option the task has
    status = invoke("rollout-status", "--production", production.container,
                    "--compose-dir", str(production.folder), env=nowhere)  # fmt: skip
    assert f"{production.container}: no container" in status.stdout, status.stdout + status.stderr

    back = invoke("rollback", "--production", production.container, "--compose-dir", str(production.folder),
                  "--ca", str(rollout_net.material.ca), "--resolver", DNS_IP,
                  env=nowhere, timeout=300)  # fmt: skip
    assert back.returncode == 0, back.stdout + back.stderr
    prod = client.containers.get(production.container)
    assert prod.status == "running" and prod.attrs["Image"] == old_image
    assert production.queue.resolve() in {Path(m["Source"]).resolve() for m in prod.attrs["Mounts"]}
    production.up()
    assert client.containers.get(production.container).id == prod.id, "docker-compose up -d recreated it"
    _at_rest(client, production.container)

    rollout_net.slow_sink.start()
    try:
        exec_text(prod, "postqueue -f")
        deadline, got = time.monotonic() + 60, list[SinkMessage]()
        while not got and time.monotonic() < deadline:
            time.sleep(0.5)
            got = [m for m in rollout_net.delivered_slowly.received() if run_of(m.raw) == "gone"]
        assert len(got) == 1, "the message queued before the container was removed was not delivered once"
        assert verify(got[0].raw, rollout_net.material.dkim.txt_value)
    finally:
        rollout_net.slow_sink.stop(timeout=1)
