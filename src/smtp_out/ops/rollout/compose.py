"""Production as docker-compose defines it: the project and service a container belongs to,
read from the labels compose put on it, and the two compose commands the rollout runs.

Compose stays the source of truth: the rollout never creates the production container itself.
It moves the image tag that the compose file names (`image: smtp-out`) and lets
`docker-compose up -d --no-deps <service>` recreate the container from the compose file. A
later `docker-compose up -d` then finds a container whose config-hash (which includes the id
of the image the tag names) matches, and leaves it alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...engine.config import COMPOSE_PREFIX
from ...errors import SmtpOutError

#: docker-compose v1, as Debian packages it.
COMPOSE = "docker-compose"


class ComposeError(SmtpOutError):
    """Production is not compose-managed, or a compose command failed."""


@dataclass(frozen=True)
class ComposeService:
    project: str
    service: str
    working_dir: Path
    config_files: tuple[str, ...]

    @classmethod
    def of(cls, container_name: str, labels: Mapping[str, str]) -> ComposeService:
        """The compose service `container_name` belongs to, from its labels."""
        try:
            return cls(
                labels[COMPOSE_PREFIX + "project"],
                labels[COMPOSE_PREFIX + "service"],
                Path(labels[COMPOSE_PREFIX + "project.working_dir"]),
                tuple(labels.get(COMPOSE_PREFIX + "project.config_files", "").split(",")),
            )
        except KeyError:
            raise ComposeError(
                f"{container_name} is not managed by docker-compose (no "
                f"{COMPOSE_PREFIX}project/service/working_dir labels): "
                "the rollout moves production only through its compose file"
            ) from None

    def _command(self, *args: str) -> list[str]:
        binary = shutil.which(COMPOSE)
        if binary is None:
            raise ComposeError(f"{COMPOSE} is not installed (scripts/provision-docker.sh installs Debian's)")
        files = [arg for f in self.config_files if f for arg in ("-f", f)]
        return [binary, "-p", self.project, *files, *args]

    def run(self, *args: str, timeout: float = 300) -> str:
        """Run a compose command in the project's directory; its output, or ComposeError."""
        argv = self._command(*args)
        try:
            done = subprocess.run(
                argv, cwd=self.working_dir, capture_output=True, text=True, timeout=timeout, check=False,
                env={**os.environ, "COMPOSE_INTERACTIVE_NO_CLI": "1"},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ComposeError(f"`{' '.join(argv[1:])}` did not finish within {timeout:.0f}s") from None
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise ComposeError(f"`{' '.join(argv[1:])}` failed (exit {done.returncode}): {last[0]}")
        return done.stdout

    def up(self, stop_timeout: int = 30, *, force_recreate: bool = False) -> None:
        """Recreate the service from the compose file if its configuration (or its image) changed,
        or whatever changed with `force_recreate`."""
        force = ["--force-recreate"] if force_recreate else []
        self.run("up", "-d", "--no-deps", "--no-build", *force, "-t", str(stop_timeout), self.service)

    def running_commands(self) -> list[int]:
        """Process ids of docker-compose commands still running on this project (one a killed
        rollout started goes on by itself: an OOM kill takes the task, not its children)."""
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            words = [a.decode(errors="replace") for a in argv]
            if (
                any(Path(w).name == COMPOSE for w in words[:3])
                and self.project in words
                and int(proc.name) != os.getpid()
            ):
                found.append(int(proc.name))
        return found

    def wait_idle(self, timeout: float = 180.0) -> None:
        """Wait until no docker-compose command runs on this project."""
        deadline = time.monotonic() + timeout
        while (pids := self.running_commands()) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pids:
            raise ComposeError(
                f"docker-compose still runs on {self.project} (pid {pids[0]}) after {timeout:.0f}s"
            )

    def config(self) -> dict[str, Any]:
        """The service as compose resolves it now (`docker-compose config`, variables from the
        caller's environment first, then .env), parsed as YAML."""
        text = self.run("config", timeout=60)
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ComposeError(f"`docker-compose config` printed no YAML ({exc})") from None
        services = doc.get("services") if isinstance(doc, dict) else None
        if not isinstance(services, dict) or not isinstance(services.get(self.service), dict):
            raise ComposeError(f"`docker-compose config` defines no service {self.service!r}")
        return dict(services[self.service])

    def binds(self) -> dict[str, str]:
        """Mount point -> host path of every bind mount the service resolves to now."""
        out: dict[str, str] = {}
        for vol in self.config().get("volumes") or []:
            if isinstance(vol, str):
                parts = vol.split(":")
                if len(parts) >= 2 and parts[0].startswith(("/", ".")):
                    out[parts[1]] = str((self.working_dir / parts[0]).resolve())
            elif isinstance(vol, dict) and vol.get("type", "bind") == "bind" and vol.get("source"):
                out[str(vol["target"])] = str((self.working_dir / str(vol["source"])).resolve())
        return out


def mount_differences(expected: Mapping[str, str], found: Mapping[str, str]) -> list[str]:
    """Where `found` (mount point -> host path) does not mount what `expected` does."""
    return [
        f"{target}: {found.get(target) or 'nothing'} instead of {source}"
        for target, source in sorted(expected.items())
        if str(Path(found.get(target) or "/nonexistent").resolve()) != str(Path(source).resolve())
    ]
