"""Rollout, part 1: deploy-parallel beside a compose-managed production, the DKIM canary, and the
burn-in report, end to end on the hermetic network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from smtp_out.dkim import DkimKey, dkim_tags, verify
from smtp_out.engine.containers import exec_text, wait_healthy
from smtp_out.testing.peers import Zone, start_peer
from smtp_out.testing.rollout import DNS_IP, PARALLEL_PORT, SLOW_DOMAIN, Production, RolloutNet

from ..helpers import invoke
from .conftest import production_on_old_image

pytestmark = pytest.mark.docker

PARALLEL = "smtp-out-it-new"


def queue_files(client: docker.DockerClient, queue: Path) -> dict[str, float]:
    """Every file under a queue directory with its mtime, read as root (Postfix owns them)."""
    return {str(p.relative_to(queue)): p.stat().st_mtime for p in queue.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def production(client: docker.DockerClient, rollout_net: RolloutNet, old_image: str) -> Iterator[Production]:
    with production_on_old_image(client, rollout_net, old_image) as prod:
        yield prod


def deploy(
    rollout_net: RolloutNet, production: Production, *extra: str, port: str = str(PARALLEL_PORT)
) -> tuple[int, str, str]:
    r = invoke(
        "deploy-parallel", "--production", production.container, "--name", PARALLEL, "--image", "smtp-out",
        "--port", port, "--ca", str(rollout_net.material.ca), "--resolver", DNS_IP, *extra,
        timeout=180,
    )  # fmt: skip
    return r.returncode, r.stdout, r.stderr


def test_deploy_parallel_beside_production_changes_nothing_of_production(
    client: docker.DockerClient, rollout_net: RolloutNet, production: Production
) -> None:
    prod = client.containers.get(production.container)
    before = (
        prod.id,
        prod.attrs["State"]["StartedAt"],
        prod.attrs["Image"],
        queue_files(client, production.queue),
    )

    code, out, err = deploy(rollout_net, production)
    assert code == 0, out + err
    assert [ln.split("]")[0] for ln in err.splitlines() if ln.startswith("deploy-parallel [")] == [
        f"deploy-parallel [{n}/6" for n in range(1, 7)
    ]
    assert "=== deploy-parallel: parallel container ready ===" in out

    prod.reload()
    assert (
        prod.id,
        prod.attrs["State"]["StartedAt"],
        prod.attrs["Image"],
        queue_files(client, production.queue),
    ) == before
    par = client.containers.get(PARALLEL)
    assert par.attrs["Image"] == client.images.get("smtp-out").id
    assert par.labels["smtp-out.rollout"] == "parallel"
    assert not [k for k in par.labels if k.startswith("com.docker.compose.")], "compose must not adopt it"
    # everything else is production's
    for key in ("Dns", "LogConfig", "RestartPolicy", "Sysctls"):
        assert par.attrs["HostConfig"][key] == prod.attrs["HostConfig"][key], key
    assert {e for e in par.attrs["Config"]["Env"] if e.startswith(("TZ=", "POSTFIX_"))} == {
        e for e in prod.attrs["Config"]["Env"] if e.startswith(("TZ=", "POSTFIX_"))
    }
    mounts = {m["Destination"]: m["Source"] for m in par.attrs["Mounts"]}
    prod_mounts = {m["Destination"]: m["Source"] for m in prod.attrs["Mounts"]}
    assert {k: v for k, v in mounts.items() if k != "/var/spool/postfix"} == {
        k: v for k, v in prod_mounts.items() if k != "/var/spool/postfix"
    }
    assert mounts["/var/spool/postfix"] == f"{production.queue}-new"
    assert set(par.attrs["NetworkSettings"]["Networks"]) == set(prod.attrs["NetworkSettings"]["Networks"])
    for net in par.attrs["NetworkSettings"]["Networks"].values():
        assert "smtp-out" not in (net["Aliases"] or []), "the app must never reach it by production's name"
    assert par.attrs["HostConfig"]["PortBindings"] == {
        "587/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1588"}]
    }

    # it relays signed mail from the app, and the smoke test passes on 1588
    sent = rollout_net.submit(PARALLEL, "reader@example.com")
    assert sent.codes == [250]
    (msg,) = rollout_net.delivered.wait_for_received(1)
    assert dkim_tags(msg.raw)["d"] == "feedsubscription.com" and verify(
        msg.raw, rollout_net.material.dkim.txt_value
    )
    smoke = invoke("smoke-test", "--container", PARALLEL, "--port", str(PARALLEL_PORT))
    assert smoke.returncode == 0, smoke.stdout

    # compose still sees production as it is
    production.up()
    prod.reload()
    assert prod.id == before[0] and prod.attrs["State"]["StartedAt"] == before[1]

    # running it again replaces only the parallel container
    code, out, err = deploy(rollout_net, production)
    assert code == 0, out + err
    assert client.containers.get(PARALLEL).id != par.id
    prod.reload()
    assert (prod.id, prod.attrs["State"]["StartedAt"]) == before[:2]
    rollout_net.delivered.clear()


def canary(rollout_net: RolloutNet, *extra: str, resolver: str = DNS_IP) -> tuple[int, dict[str, object]]:
    r = invoke(
        "canary", "--container", PARALLEL, "--port", str(PARALLEL_PORT), "--ca", str(rollout_net.material.ca),
        "--resolver", resolver, "--json", *extra,
    )  # fmt: skip
    return r.returncode, json.loads(r.stdout)


def failed(report: dict[str, object]) -> dict[str, str]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return {c["name"]: c["observed"] for c in checks if not c["passed"]}


def test_canary_passes_then_releases_the_checked_message(
    client: docker.DockerClient, rollout_net: RolloutNet, production: Production
) -> None:
    code, report = canary(rollout_net)
    assert code == 0, report
    _, listing = exec_text(client.containers.get(PARALLEL), "postqueue -j")
    assert listing.strip() == "", "the canary deletes its message by default"

    code, report = canary(rollout_net, "--to", "reader@example.net")
    assert code == 0, report
    (msg,) = rollout_net.delivered.wait_for_received(1)
    assert msg.rcpt_tos == ("reader@example.net",) and msg.mail_from.startswith("smtp-out-canary@")
    assert verify(msg.raw, rollout_net.material.dkim.txt_value)
    rollout_net.delivered.clear()


def test_canary_fails_when_dns_publishes_another_key(
    client: docker.DockerClient, rollout_net: RolloutNet
) -> None:
    other = DkimKey.generate(1024)
    wrong = Zone(hosts={}, mx={}, txt={"mail._domainkey.feedsubscription.com": other.txt_value})
    liar = start_peer(
        client, "smtp-out-liar", rollout_net.prod, "10.5.5.54", command=wrong.dnsmasq_command("10.5.5.54")
    )
    try:
        code, report = canary(rollout_net, resolver="10.5.5.54")
    finally:
        liar.remove(force=True)
    assert code == 1
    assert set(failed(report)) == {
        "Published key matches the mounted private key",
        "Signature verifies against the published key (dkimpy)",
    }
    _, listing = exec_text(client.containers.get(PARALLEL), "postqueue -j")
    assert listing.strip() == "", "a message that failed the canary is deleted, never released"
    assert rollout_net.delivered.received() == []


def test_canary_with_opendkim_down_is_tempfailed_never_sent_unsigned(
    client: docker.DockerClient, rollout_net: RolloutNet
) -> None:
    par = client.containers.get(PARALLEL)
    exec_text(par, "pkill -x opendkim")
    try:
        code, report = canary(rollout_net)
        assert code == 1
        observed = failed(report)
        assert observed["Accepted over STARTTLS"][:1] == "4", (
            observed
        )  # tempfail (454 4.3.0): the app retries
        assert rollout_net.delivered.received() == []
    finally:
        par.restart(timeout=10)
        wait_healthy(par, timeout=60)


def test_report_puts_production_and_the_parallel_container_side_by_side(
    client: docker.DockerClient, rollout_net: RolloutNet, production: Production
) -> None:
    for host in ("smtp-out", PARALLEL):
        assert rollout_net.submit(host, "reader@example.org", count=2).codes == [250, 250]
    rollout_net.delivered.wait_for_received(4)
    names = f"{production.container},{PARALLEL}"
    text = invoke("report", "--container", names)
    header = next(ln for ln in text.stdout.splitlines() if production.container in ln)
    assert PARALLEL in header, "one table, one column each"
    data = json.loads(invoke("report", "--container", names, "--json").stdout)
    assert [item["container"] for item in data["reports"]] == [production.container, PARALLEL]
    failed = {
        item["container"]: [c["name"] for c in item["checks"] if not c["passed"]] for item in data["reports"]
    }
    # Production runs the spec's image, whose OpenDKIM logs to a syslog nobody reads: its log cannot
    # show a signature, and the report says so (a red flag, exit 1). The new image shows them all.
    assert failed == {production.container: ["Every accepted message signed"], PARALLEL: []}, text.stdout
    assert text.returncode == 1, text.stdout + text.stderr
    rollout_net.delivered.clear()


def test_deploy_parallel_checks_before_it_replaces_and_cleanup_finds_an_orphaned_queue(
    client: docker.DockerClient, rollout_net: RolloutNet, production: Production, tmp_path: Path
) -> None:
    code, out, err = deploy(rollout_net, production)
    assert code == 0, out + err
    par = client.containers.get(PARALLEL)
    queue = f"{production.queue}-new"
    sent = rollout_net.submit(PARALLEL, f"reader@{SLOW_DOMAIN}", extra=["--run", "orphan"])
    assert sent.codes == [250]

    code, out, err = deploy(rollout_net, production, port="70000")
    assert code == 2 and "--port '70000': expected a whole number from 1 to 65535" in out + err, out + err
    again = client.containers.get(PARALLEL)
    assert (again.id, again.status) == (par.id, "running")

    code, out, err = deploy(rollout_net, production, "--queue-dir", str(tmp_path / "another"))
    assert code == 1 and "would strand them" in out + err, out + err
    again = client.containers.get(PARALLEL)
    assert (again.id, again.status) == (par.id, "running")

    par.remove(force=True)  # gone by hand: its queue still holds the deferred message
    done = invoke("rollout-cleanup", "--production", production.container, "--keep", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    kept = f"kept orphaned parallel queue {queue}: 1 message(s) still queued there"
    assert kept in done.stdout, done.stdout
    assert Path(queue).is_dir()
