"""Run containers of the image, wait until they are ready (polling, bounded), exec, clean up."""

from __future__ import annotations

import contextlib
import re
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import IPAMConfig, IPAMPool

from . import IMAGE, LABEL
from .material import Material
from .sections import output_text

SUBMISSION_PORT = 587
#: Production runs the container with IPv6 disabled.
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}


class ContainerExited(RuntimeError):
    """The container stopped while we waited for it; carries its exit code and logs."""

    def __init__(self, name: str, code: int, logs: str) -> None:
        last = next((ln for ln in reversed(logs.splitlines()) if ln.strip()), "(no output)")
        super().__init__(f"container {name} exited with code {code}: {last}")
        self.code = code
        self.logs = logs


class NotReady(TimeoutError):
    """The container did not become ready within the deadline."""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class SmtpOutOptions:
    """How to run one smtp-out container: mounts, network, environment."""

    image: str = IMAGE
    name: str = field(default_factory=lambda: unique("smtp-out-test"))
    network: str | None = None
    ipv4_address: str | None = None
    material: Material | None = None
    keys_read_only: bool = True
    spool: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    sysctls: Mapping[str, str] = field(default_factory=lambda: dict(NO_IPV6))
    extra_volumes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    health_interval_s: float | None = None
    dns: list[str] | None = None
    ports: Mapping[str, Any] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def volumes(self) -> dict[str, dict[str, str]]:
        vols: dict[str, dict[str, str]] = {}
        if self.material is not None:
            m = self.material
            vols[str(m.keys_dir)] = {
                "bind": "/etc/opendkim/keys",
                "mode": "ro" if self.keys_read_only else "rw",
            }
            vols[str(m.cert)] = {"bind": "/etc/postfix/cert/smtp.cert", "mode": "ro"}
            vols[str(m.cert_key)] = {"bind": "/etc/postfix/cert/smtp.key", "mode": "ro"}
        if self.spool is not None:
            vols[str(self.spool)] = {"bind": "/var/spool/postfix", "mode": "rw"}
        vols.update({k: dict(v) for k, v in self.extra_volumes.items()})
        return vols


def run_smtp_out(client: docker.DockerClient, opts: SmtpOutOptions) -> Container:
    """Create and start a container (detached); the caller removes it (see `removing`)."""
    kwargs: dict[str, Any] = {
        "name": opts.name,
        "hostname": "smtp-out",
        "detach": True,
        "environment": dict(opts.env),
        "volumes": opts.volumes(),
        "sysctls": dict(opts.sysctls),
        "labels": {LABEL: "1", **opts.labels},
    }
    if opts.dns:
        kwargs["dns"] = opts.dns
    if opts.ports:
        kwargs["ports"] = dict(opts.ports)
    if opts.health_interval_s:
        ns = int(opts.health_interval_s * 1e9)
        kwargs["healthcheck"] = {"interval": ns, "timeout": 3_000_000_000, "retries": 2, "start_period": 0}
    if opts.network:
        kwargs["network"] = opts.network
        if opts.ipv4_address:
            endpoint = client.api.create_endpoint_config(ipv4_address=opts.ipv4_address)
            kwargs["networking_config"] = {opts.network: endpoint}
    container: Container = client.containers.run(opts.image, **kwargs)
    container.reload()
    return container


def address(container: Container, network: str | None = None) -> str:
    """The container's IPv4 address (on `network`, or its only network)."""
    container.reload()
    nets: dict[str, Any] = container.attrs["NetworkSettings"]["Networks"]
    if network is not None:
        return str(nets[network]["IPAddress"])
    ips = [str(n["IPAddress"]) for n in nets.values() if n.get("IPAddress")]
    if not ips:
        raise RuntimeError(f"container {container.name} has no IPv4 address")
    return ips[0]


def logs(container: Container) -> str:
    return bytes(container.logs(stdout=True, stderr=True)).decode("utf-8", "replace")


def wait_for_log(
    container: Container, pattern: str, count: int = 1, timeout: float = 30.0, interval: float = 0.2
) -> list[str]:
    """Poll the container's log until `pattern` (a regular expression, searched per line) matches
    at least `count` lines; returns the matching lines. Log lines trail the events they describe
    (Postfix logs a delivery after the peer's reply, OpenDKIM's lines pass through syslogd), so a
    test that waited for an event reads its log line with this, never with one read of the log.
    Raises NotReady with the lines it did find after `timeout`."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        hits = [ln for ln in logs(container).splitlines() if regex.search(ln)]
        if len(hits) >= count:
            return hits
        if time.monotonic() > deadline:
            raise NotReady(
                f"{container.name}: {len(hits)} of {count} log lines match {pattern!r} after {timeout:.0f}s"
            )
        time.sleep(interval)


def exec_text(container: Container, cmd: str | list[str], user: str = "root") -> tuple[int, str]:
    """Run a command in the container; returns (exit code, combined output)."""
    argv = ["bash", "-c", cmd] if isinstance(cmd, str) else cmd
    result = container.exec_run(argv, user=user, demux=False)
    return int(result.exit_code or 0), output_text(result.output)


def read_banner(host: str, port: int, timeout: float = 2.0) -> str:
    """Connect, read the 220 greeting, say QUIT politely (no pipelining), return the greeting."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        f = sock.makefile("rb")
        banner = f.readline().decode("utf-8", "replace").strip()
        while banner[3:4] == "-":  # multi-line greeting
            banner = f.readline().decode("utf-8", "replace").strip()
        sock.sendall(b"QUIT\r\n")
        with contextlib.suppress(OSError):
            f.readline()
        return banner


def wait_for_banner(
    container: Container,
    host: str,
    port: int = SUBMISSION_PORT,
    timeout: float = 30.0,
    interval: float = 0.05,
) -> float:
    """Poll until the port greets with 220; returns the seconds waited. Fails fast when the
    container exits (ContainerExited, with its logs) and after `timeout` (NotReady)."""
    start = time.monotonic()
    deadline = start + timeout
    last_error = "no attempt"
    checks = 0
    while time.monotonic() < deadline:
        try:
            banner = read_banner(host, port, timeout=0.5)
            if banner.startswith("220"):
                return time.monotonic() - start
            last_error = f"greeting {banner!r}"
        except OSError as exc:
            last_error = str(exc)
        checks += 1
        if checks % 4 == 0:  # a status round trip every few polls is enough to fail fast
            container.reload()
            if container.status in ("exited", "dead"):
                raise ContainerExited(str(container.name), _exit_code(container), logs(container))
        time.sleep(interval)
    raise NotReady(f"{container.name}: no 220 greeting on {host}:{port} within {timeout:.0f}s ({last_error})")


def wait_for_exit(container: Container, timeout: float = 30.0) -> int:
    """Wait until the container stops; returns its exit code."""
    result = container.wait(timeout=timeout)
    return int(result.get("StatusCode", -1))


def wait_for_health(container: Container, want: str, timeout: float = 60.0, interval: float = 0.2) -> str:
    """Poll the healthcheck state until it is `want` (healthy/unhealthy); returns the last state."""
    deadline = time.monotonic() + timeout
    state = "none"
    while time.monotonic() < deadline:
        container.reload()
        state = str(container.attrs.get("State", {}).get("Health", {}).get("Status", "none"))
        if state == want:
            return state
        time.sleep(interval)
    raise NotReady(f"{container.name}: health is {state!r}, not {want!r}, after {timeout:.0f}s")


def _exit_code(container: Container) -> int:
    return int(container.attrs.get("State", {}).get("ExitCode", -1))


@contextlib.contextmanager
def removing(container: Container) -> Iterator[Container]:
    """Yield the container and remove it (forcefully, with anonymous volumes) afterwards."""
    try:
        yield container
    finally:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True, v=True)


@contextlib.contextmanager
def internal_network(client: docker.DockerClient, name: str, subnet: str) -> Iterator[Network]:
    """An --internal bridge network with a fixed subnet; removed afterwards with its containers."""
    ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)])
    network = client.networks.create(name, driver="bridge", internal=True, ipam=ipam, labels={LABEL: "1"})
    try:
        yield network
    finally:
        _remove_network(client, network)


def _remove_network(client: docker.DockerClient, network: Network) -> None:
    """Remove the network and the containers on it; one already gone (swept by `invoke clean`
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
