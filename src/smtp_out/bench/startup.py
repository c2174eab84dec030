"""Start-up: docker run to the 220 banner and to `healthy`, and what the healthcheck costs.

The healthcheck's cost is measured where it is paid: each check is a `docker exec` (dockerd,
containerd, the container's shim, and a runc process the shim reaps) running the script inside
the container. Over the same idle window, CPU time of those daemons (children included) plus the
container's own cgroup is summed for a container with the image's healthcheck and for one with
the healthcheck off; the difference, per check and as a share of one core, is the cost.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import docker
from docker.models.containers import Container

from .. import IMAGE
from ..engine.containers import address, removing, unique, wait_for_health
from ..engine.networks import internal_network_anywhere
from ..material import Material
from ..ops.launch import SmtpOutOptions, run_smtp_out, wait_for_banner
from ..progress import Progress
from .results import Figure, Results

#: Subnets the start-up benchmark's network may take (the first one free).
SUBNETS = [f"172.31.{third}.0/24" for third in range(100, 150)]
DAEMONS = ("dockerd", "containerd", "containerd-shim-runc-v2")
_TICK = os.sysconf("SC_CLK_TCK")


def daemon_cpu_seconds() -> float:
    """CPU time so far of the engine's daemons and of the children they reaped (runc)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name in DAEMONS or name.startswith("containerd-shim"):
            fields = text[text.rindex(")") + 2 :].split()
            total += sum(int(x) for x in fields[11:15]) / _TICK  # utime stime cutime cstime
    return total


def container_cpu_seconds(container: Container) -> float:
    stats = container.stats(stream=False)
    assert isinstance(stats, dict)
    return int(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


def bench_startup(
    client: docker.DockerClient, material: Material, res: Results, repeats: int, p: Progress
) -> None:
    banner, healthy = [], []
    with internal_network_anywhere(client, unique("smtp-out-bench"), SUBNETS) as net:
        for _ in range(repeats):
            t = time.perf_counter()
            c = run_smtp_out(client, SmtpOutOptions(network=str(net.name), material=material))
            with removing(c):
                wait_for_banner(c, address(c, str(net.name)), interval=0.01)
                banner.append(time.perf_counter() - t)
                wait_for_health(c, "healthy", timeout=60, interval=0.02)
                healthy.append(time.perf_counter() - t)
    fig = res.add(Figure("docker run -> 220 banner on 587", "s", banner, target="<= 0.5 s"), p)
    fig.met = fig.median <= 0.5
    fig = res.add(Figure("docker run -> healthcheck healthy", "s", healthy, target="<= 2 s"), p)
    fig.met = fig.median <= 2.0


def bench_health_cost(client: docker.DockerClient, material: Material, res: Results, p: Progress,
                      window: float = 60.0) -> None:  # fmt: skip
    """CPU of the healthcheck: the image's own against none, over the same idle window."""
    interval = int(client.images.get(IMAGE).attrs["Config"]["Healthcheck"]["Interval"]) / 1e9
    spent: dict[bool, float] = {}
    with internal_network_anywhere(client, unique("smtp-out-bench"), SUBNETS) as net:
        for checking in (True, False):
            c = run_smtp_out(
                client, SmtpOutOptions(network=str(net.name), material=material, healthcheck=checking)
            )
            with removing(c):
                wait_for_banner(c, address(c, str(net.name)))
                time.sleep(2 * interval)  # past start-up
                d0, c0 = daemon_cpu_seconds(), container_cpu_seconds(c)
                time.sleep(window)
                spent[checking] = daemon_cpu_seconds() - d0 + container_cpu_seconds(c) - c0
    share = 100 * max(0.0, spent[True] - spent[False]) / window
    fig = res.add(Figure("healthcheck: CPU, the image's HEALTHCHECK against none", "% of a core", [share],
                         target="< 1% of a core"), p)  # fmt: skip
    fig.met = share < 1.0
    fig.note = (
        f"interval {interval:g} s; each run watches for 10 s; {window:.0f} s idle windows; "
        "dockerd, containerd, shim, runc and the container's cgroup"
    )
