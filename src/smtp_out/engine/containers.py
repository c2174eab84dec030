"""Containers: find one by name, exec in it (one primitive), read its logs, and wait for it
(bounded, through engine.polling) to log a line, turn healthy or exit.

Nothing here knows SMTP or the image's mount layout: running the relay image with its material
and waiting for its greeting live in ops.launch.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from ..errors import SmtpOutError
from .polling import NotReady, poll

__all__ = ["ContainerExited", "NoSuchContainer", "NotReady", "Section"]


class NoSuchContainer(SmtpOutError):
    """No container has that name: one line, not a table of failures or a traceback."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no container named {name!r} (docker ps -a lists the containers)")
        self.name = name


def get(client: docker.DockerClient, name: str) -> Container:
    """The container named `name`; NoSuchContainer when there is none."""
    try:
        container: Container = client.containers.get(name)
    except docker.errors.NotFound:
        raise NoSuchContainer(name) from None
    return container


class ContainerExited(SmtpOutError):
    """The container stopped while we waited for it; carries its exit code and logs."""

    def __init__(self, name: str, code: int, logs: str) -> None:
        last = next((ln for ln in reversed(logs.splitlines()) if ln.strip()), "(no output)")
        super().__init__(f"container {name} exited with code {code}: {last}")
        self.code = code
        self.logs = logs


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


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
