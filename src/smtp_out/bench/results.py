"""What a benchmark run measured: figures over repeated runs, load rows, and the machine."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ..errors import SmtpOutError
from ..progress import Progress


class BenchFailed(SmtpOutError):
    """A benchmarked command did not do what it should, so its timing means nothing."""


@dataclass
class Figure:
    """One measured quantity over repeated runs."""

    name: str
    unit: str
    samples: list[float]
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "min": self.min, "median": self.median, "max": self.max}


@dataclass
class Results:
    machine: dict[str, str]
    figures: list[Figure] = field(default_factory=list)
    load: list[dict[str, Any]] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0

    def add(self, fig: Figure, progress: Progress) -> Figure:
        self.figures.append(fig)
        progress(f"  {fig.name}: median {fig.median:.3f} {fig.unit} (min {fig.min:.3f}, max {fig.max:.3f})")
        return fig


def signing_overhead(load: list[dict[str, Any]], mx: str = "smtp-sink") -> list[tuple[int, float]]:
    """(concurrency, delivered/s without signing / with signing) for each concurrency, on `mx`."""
    out = []
    rows = [r for r in load if r.get("mx", "aiosmtpd") == mx and r.get("run", "load") == "load"]
    for conc in sorted({r["concurrency"] for r in rows}):
        on = next(r for r in rows if r["concurrency"] == conc and r["signing"])
        off = next(r for r in rows if r["concurrency"] == conc and not r["signing"])
        out.append((conc, off["delivered_per_s"] / on["delivered_per_s"]))
    return out


def machine(client: docker.DockerClient) -> dict[str, str]:
    """The machine the figures were measured on."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    server = ""
    with contextlib.suppress(docker.errors.DockerException):
        server = str(client.version().get("Version", ""))
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "docker_engine": server,
    }
