"""Containers of the image: run one, exec in it (one primitive), read its logs, and wait for it
(bounded, through engine.polling) to greet, log a line, turn healthy or exit.

Size (~310 lines): everything about one container's life (run, exec, logs, the waits) and
nothing else; networks, files and images have modules of their own.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from .. import IMAGE, LABEL
from ..errors import SmtpOutError
from ..mail import SUBMISSION_PORT, greet
from ..material import Material
from .polling import NotReady, poll

__all__ = ["SUBMISSION_PORT", "ContainerExited", "NotReady", "Section", "SmtpOutOptions"]

#: Production runs the container with IPv6 disabled.
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}


class ContainerExited(SmtpOutError):
    """The container stopped while we waited for it; carries its exit code and logs."""

    def __init__(self, name: str, code: int, logs: str) -> None:
        last = next((ln for ln in reversed(logs.splitlines()) if ln.strip()), "(no output)")
        super().__init__(f"container {name} exited with code {code}: {last}")
        self.code = code
        self.logs = logs


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
    healthcheck: bool = True  # False: the image's HEALTHCHECK is switched off
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
    if not opts.healthcheck:
        kwargs["healthcheck"] = {"test": ["NONE"]}
    elif opts.health_interval_s:
        # the image's test is kept; its runs may watch for up to 10 s (healthcheck --watch)
        ns = int(opts.health_interval_s * 1e9)
        kwargs["healthcheck"] = {"interval": ns, "timeout": 30_000_000_000, "retries": 2, "start_period": 0}
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
        raise SmtpOutError(f"container {container.name} has no IPv4 address")
    return ips[0]


def logs(container: Container, **kwargs: Any) -> str:
    """The container's log (stdout and stderr) as text; keyword arguments go to the SDK."""
    return bytes(container.logs(stdout=True, stderr=True, **kwargs)).decode("utf-8", "replace")


# --- exec --------------------------------------------------------------------------------


def exec_text(container: Container, cmd: str | list[str], user: str = "root") -> tuple[int, str]:
    """Run a command in the container (a string runs under bash -c); returns (exit code,
    combined output). The one way this package runs a command in a container."""
    argv = ["bash", "-c", cmd] if isinstance(cmd, str) else cmd
    result = container.exec_run(argv, user=user, demux=False)
    output = result.output.decode("utf-8", "replace") if isinstance(result.output, bytes) else ""
    return int(result.exit_code or 0), output


@dataclass(frozen=True)
class Section:
    """One command's exit code and output, from `run_sections`."""

    rc: int
    output: str


def sections_script(commands: Mapping[str, str], marker: str) -> str:
    """A bash script that runs each command and prints its output and exit code between markers."""
    parts = []
    for name, cmd in commands.items():
        parts.append(f"echo '{marker} begin {name}'; ( {cmd} ) 2>&1; echo \"{marker} end {name} $?\"")
    return "\n".join(parts) + "\n"


def parse_sections(text: str, marker: str) -> dict[str, Section]:
    out: dict[str, Section] = {}
    m_ = re.escape(marker)
    pattern = re.compile(
        rf"^{m_} begin (?P<name>\S+)\n(?P<body>.*?)^{m_} end (?P=name) (?P<rc>\d+)$", re.S | re.M
    )
    for m in pattern.finditer(text):
        out[m.group("name")] = Section(int(m.group("rc")), m.group("body").rstrip("\n"))
    return out


def run_sections(container: Container, commands: Mapping[str, str]) -> dict[str, Section]:
    """Run several commands in ONE docker exec round trip; returns name -> (exit code, output)."""
    marker = f"@@{uuid.uuid4().hex[:10]}"
    _, out = exec_text(container, sections_script(commands, marker))
    return parse_sections(out, marker)


# --- waiting -----------------------------------------------------------------------------


def wait_for_log(
    container: Container, pattern: str, count: int = 1, timeout: float = 30.0, interval: float = 0.2
) -> list[str]:
    """Poll the container's log until `pattern` (a regular expression, searched per line) matches
    at least `count` lines; returns the matching lines. Log lines trail the events they describe
    (Postfix logs a delivery after the peer's reply, OpenDKIM's lines pass through syslogd), so a
    test that waited for an event reads its log line with this, never with one read of the log.
    Raises NotReady with the number of lines it did find after `timeout`."""
    regex = re.compile(pattern)
    hits: list[str] = []

    def probe() -> list[str] | None:
        nonlocal hits
        hits = [ln for ln in logs(container).splitlines() if regex.search(ln)]
        return hits if len(hits) >= count else None

    return poll(
        probe,
        timeout=timeout,
        interval=interval,
        seen=lambda: (
            f"{container.name}: {len(hits)} of {count} log lines match {pattern!r} after {timeout:.0f}s"
        ),
    )


def wait_for_banner(
    container: Container,
    host: str,
    port: int = SUBMISSION_PORT,
    timeout: float = 30.0,
    interval: float = 0.05,
) -> float:
    """Poll until the port greets with 220; returns the seconds waited. Fails fast when the
    container exits (ContainerExited, with its logs) and after `timeout` (NotReady)."""
    started = time.monotonic()
    polls, last = 0, "no attempt"

    def probe() -> float | None:
        nonlocal polls, last
        greeting = greet(host, port, timeout=0.5)
        if greeting.banner.startswith("220"):
            return time.monotonic() - started
        last = greeting.error or f"greeting {greeting.banner!r}"
        polls += 1
        if polls % 4 == 0:  # a status round trip every few polls is enough to fail fast
            container.reload()
            if container.status in ("exited", "dead"):
                raise ContainerExited(str(container.name), exit_code_of(container), logs(container))
        return None

    return poll(
        probe,
        timeout=timeout,
        interval=interval,
        seen=lambda: f"{container.name}: no 220 greeting on {host}:{port} within {timeout:.0f}s ({last})",
    )


def wait_for_exit(container: Container, timeout: float = 30.0) -> int:
    """Wait until the container stops; returns its exit code."""
    result = container.wait(timeout=timeout)
    return int(result.get("StatusCode", -1))


def health(container: Container) -> str:
    """The healthcheck state after a fresh inspect: healthy, unhealthy, starting or none."""
    container.reload()
    return str((container.attrs.get("State", {}).get("Health") or {}).get("Status", "none"))


def wait_for_health(container: Container, want: str, timeout: float = 60.0, interval: float = 0.2) -> str:
    """Poll the healthcheck state until it is `want` (healthy/unhealthy); returns it."""
    state = "none"

    def probe() -> str | None:
        nonlocal state
        state = health(container)
        return state if state == want else None

    return poll(
        probe,
        timeout=timeout,
        interval=interval,
        seen=lambda: f"{container.name}: health is {state!r}, not {want!r}, after {timeout:.0f}s",
    )


def wait_healthy(
    container: Container, timeout: float = 60.0, interval: float = 0.2, *, restarts: int | None = None
) -> None:
    """Poll until the healthcheck says healthy. Fails fast (ContainerExited, with its last log
    line) when the container exits or its restart policy restarts it more than `restarts` times
    (default: as often as it had when the wait began): it will not get healthy."""
    if restarts is None:
        restarts = int(container.attrs.get("RestartCount", 0))
    state = "none"

    def probe() -> bool | None:
        nonlocal state
        state = health(container)
        s = container.attrs.get("State", {})
        if (
            s.get("Status") in ("exited", "dead")
            or s.get("Restarting")
            or int(container.attrs.get("RestartCount", 0)) > restarts
        ):
            raise ContainerExited(str(container.name), int(s.get("ExitCode", -1)), logs(container))
        return True if state == "healthy" else None

    poll(
        probe,
        timeout=timeout,
        interval=interval,
        seen=lambda: f"{container.name}: health is {state!r}, not 'healthy', after {timeout:.0f}s",
    )


def exit_code_of(container: Container) -> int:
    return int(container.attrs.get("State", {}).get("ExitCode", -1))


@contextlib.contextmanager
def removing(container: Container) -> Iterator[Container]:
    """Yield the container and remove it (forcefully, with anonymous volumes) afterwards."""
    try:
        yield container
    finally:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            container.remove(force=True, v=True)
