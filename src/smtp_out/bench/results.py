"""What a benchmark run measured: figures over repeated runs, load rows, and the machine.

One rule for every figure: one sample is shown once, as what it is; a spread (min-max) is
shown only over repeated runs, with their count.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
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

    @property
    def runs(self) -> int:
        return len(self.samples)

    def shown(self, digits: int = 3) -> str:
        return shown(self.samples, digits)

    def to_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "runs": self.runs, "median": self.median}
        if self.runs > 1:
            out.update(min=self.min, max=self.max)
        return out


def shown(samples: list[float], digits: int = 3) -> str:
    """A figure as the report shows it: one sample once; several as median (min-max, n runs)."""
    if not samples:
        return "-"
    if len(samples) == 1:
        return f"{samples[0]:.{digits}f}"
    lo, mid, hi = min(samples), statistics.median(samples), max(samples)
    return f"{mid:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f}, {len(samples)} runs)"


@dataclass
class Results:
    machine: dict[str, str]
    figures: list[Figure] = field(default_factory=list)
    load: list[dict[str, Any]] = field(default_factory=list)
    started: str = ""
    seconds: float = 0.0
    source: dict[str, Any] = field(default_factory=dict)  # the commit measured (source_commit)

    def add(self, fig: Figure, progress: Progress) -> Figure:
        self.figures.append(fig)
        progress(f"  {fig.name}: {fig.shown()} {fig.unit}" + (f" ({fig.note})" if fig.note else ""))
        return fig


Row = dict[str, Any]
#: (MX, concurrency, signing) -> the rows of the repeated runs.
Groups = dict[tuple[str, int, bool], list[Row]]


def load_groups(load: list[Row], run: str = "load") -> Groups:
    """Load rows of one kind grouped by (MX, concurrency, signing), in the order first run."""
    out: Groups = {}
    for r in load:
        if r.get("run", "load") == run:
            out.setdefault((r.get("mx", "aiosmtpd"), r["concurrency"], r["signing"]), []).append(r)
    return out


def signing_overhead(load: list[dict[str, Any]], mx: str = "smtp-sink") -> list[tuple[int, float]]:
    """(concurrency, delivered/s without signing / with signing) for each concurrency, on `mx`,
    from the medians of repeated runs."""
    groups = load_groups(load)
    out = []
    for conc in sorted({c for (m, c, _) in groups if m == mx}):
        on, off = groups.get((mx, conc, True)), groups.get((mx, conc, False))
        if on and off:
            med = [statistics.median(r["delivered_per_s"] for r in rows) for rows in (off, on)]
            out.append((conc, med[0] / med[1]))
    return out


def source_commit(root: Path) -> dict[str, Any]:
    """The commit the bench measured, and whether the work tree differed from it."""

    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return r.stdout.strip() if r.returncode == 0 else ""

    head = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": head or "unknown", "dirty": bool(status), "dirty_files": status.splitlines()[:20]}


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
