"""Benchmarks: how fast the image builds, starts, is checked and relays.

Figures are repeated where that is cheap (a figure measured once is reported once), and every
comparison is a ratio measured in the same run, because these machines are noisy. `run`
measures; bench.report writes the results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from .. import IMAGE, LABEL, project
from ..engine import images
from ..engine.containers import removing, unique, wait_for_health
from ..material import Material
from ..ops import configtest, smoke
from ..ops.launch import SmtpOutOptions, run_smtp_out, wait_for_banner
from ..ops.report import burnin
from ..ops.report.logparse import summarise
from ..ops.report.synthetic import synthetic_log
from ..progress import Progress, quiet
from ..testing.peers import PEER_IMAGE
from . import DEFAULT_CONCURRENCY, PARTS
from .load import bench_load
from .results import BenchFailed, Figure, Results, machine, source_commit
from .rollout import bench_rollout
from .startup import bench_health_cost, bench_startup


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _spec_script(name: str) -> Path:
    return project.root() / "bench" / name


# --- 1. image ----------------------------------------------------------------------------


def bench_image(client: docker.DockerClient, res: Results, repeats: int, progress: Progress) -> None:
    size = int(client.images.get(IMAGE).attrs["Size"])
    res.add(Figure("image size", "MB", [size / 1e6]), progress)
    tag = "smtp-out-bench"
    with tempfile.TemporaryDirectory(prefix="smtp-out-bench-ctx-") as tmp:
        ctx = Path(tmp) / "ctx"
        shutil.copytree(images.smtp_out_spec().context, ctx)
        spec = images.ImageSpec(tag, ctx)
        cold = []
        for _ in range(max(1, repeats - 1)):
            if images.exists(client, tag):
                client.api.remove_image(tag, force=True)
            cold.append(timed(lambda: images.build(client, spec, quiet, nocache=True)))
        res.add(Figure("cold build (no cache)", "s", cold), progress)
        warm = []
        for i in range(repeats):
            with (ctx / "etc" / "postfix" / "virtual").open("a") as f:
                f.write(f"# bench edit {i} {time.time()}\n")
            warm.append(timed(lambda: images.build(client, spec, quiet)))
        res.add(Figure("rebuild after editing etc/postfix/virtual", "s", warm, note="layer cache"), progress)
    if images.exists(client, tag):
        client.api.remove_image(tag, force=True)


# --- 3. checks ---------------------------------------------------------------------------


def bench_checks(
    client: docker.DockerClient, material: Material, res: Results, repeats: int, p: Progress
) -> None:
    port = 15870
    opts = SmtpOutOptions(
        name=unique("smtp-out-bench-smoke"), material=material, ports={"587/tcp": ("127.0.0.1", port)}
    )
    c = run_smtp_out(client, opts)  # the default bridge, published on loopback, as in production
    with removing(c):
        wait_for_banner(c, "127.0.0.1", port)
        wait_for_health(c, "healthy", timeout=60)
        name = str(c.name)
        env = {**os.environ, "CONTAINER": name, "PORT": str(port)}
        lib, cli_, spec = [], [], []
        for _ in range(repeats * 3):
            lib.append(timed(lambda: _must(smoke.run(client, name, port).ok, "smoke-test failed")))
            cli_.append(timed(lambda: _run([sys.executable, "-m", "invoke", "smoke-test", "--container", name,
                                             "--port", str(port)], expect=0)))  # fmt: skip
            spec.append(
                timed(lambda: _run(["bash", str(_spec_script("spec_smoke_test.sh"))], env=env, expect=None))
            )
        spec_fig = res.add(Figure("spec Makefile smoke recipe (bench/spec_smoke_test.sh)", "s", spec), p)
        for label, samples in (
            ("invoke smoke-test (whole command)", cli_),
            ("smoke checks (library call)", lib),
        ):
            fig = res.add(Figure(label, "s", samples, target=">= 4x faster than the spec recipe"), p)
            ratio = spec_fig.median / fig.median
            fig.met = ratio >= 4
            fig.note = f"{ratio:.1f}x faster than the spec recipe (same container, same run)"

    started_to_verdict, total, spec_cfg = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        report, facts = configtest.run(client)
        _must(report.ok, "config-test failed")
        total.append(time.perf_counter() - t)
        started_to_verdict.append(facts.seconds_to_ready + facts.seconds_to_verdict)
        spec_cfg.append(timed(lambda: _run(["bash", str(_spec_script("spec_config_test.sh"))], expect=None)))
    s = res.add(
        Figure(
            "spec config recipe (fixed sleep 5)", "s", spec_cfg, note="reports FAIL: no certificate mounted"
        ),
        p,
    )
    fig = res.add(
        Figure("invoke config-test, no build (whole run)", "s", total, target="verdict within 2 s of start"),
        p,
    )
    fig.note = f"{s.median / fig.median:.1f}x faster than the spec recipe"
    v = res.add(Figure("config-test: container start -> verdict", "s", started_to_verdict, target="< 2 s"), p)
    v.met = v.median < 2.0


# --- 4. the burn-in report on a day of logs ---------------------------------------------


def bench_report(client: docker.DockerClient, res: Results, repeats: int, workdir: Path, p: Progress, *,
                 lines: int = 100_000) -> None:  # fmt: skip
    """The burn-in report's summariser on `lines` log lines: in memory, and streamed from a
    container's log through the engine as `invoke report` reads it."""
    log = list(synthetic_log(lines, timestamps=False))
    memory = [timed(lambda: summarise(log)) for _ in range(repeats)]
    fig = res.add(Figure(f"report: summarise {lines:,} log lines", "s", memory), p)
    fig.note = f"{lines / fig.median:,.0f} lines/s"
    source = workdir / "day.log"
    source.write_text("\n".join(log) + "\n")
    name = unique("smtp-out-bench-log")
    client.containers.run(
        PEER_IMAGE, ["sh", "-c", "cat /day.log"], name=name, labels={LABEL: "1"}, network_disabled=True,
        volumes={str(source): {"bind": "/day.log", "mode": "ro"}},
    )  # fmt: skip
    try:
        streamed = [timed(lambda: burnin.gather(client, name)) for _ in range(repeats)]
    finally:
        client.containers.get(name).remove(force=True)
    fig = res.add(Figure(f"report: {lines:,} lines streamed from a container's log", "s", streamed), p)
    fig.note = f"{lines / fig.median:,.0f} lines/s through the Docker API"


def _must(ok: bool, what: str) -> None:
    if not ok:
        raise BenchFailed(what)


def _run(argv: list[str], env: dict[str, str] | None = None, expect: int | None = 0) -> None:
    r = subprocess.run(
        argv, cwd=project.root(), env=env, capture_output=True, text=True, check=False, timeout=120
    )
    if expect is not None and r.returncode != expect:
        raise BenchFailed(f"{' '.join(argv)} exited {r.returncode}: {r.stdout[-500:]}{r.stderr[-500:]}")


# --- the whole run -----------------------------------------------------------------------


def run(
    client: docker.DockerClient,
    *,
    repeats: int = 3,
    load_messages: int = 1000,
    concurrencies: list[int] | None = None,
    parts: tuple[str, ...] = PARTS,
    burst: int = 10_000,
    progress: Progress = print,
) -> Results:
    """Build the relay image, then run the chosen parts."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise BenchFailed(f"unknown part(s) {', '.join(unknown)}; choose from {','.join(PARTS)}")
    images.build_smtp_out(client, progress)
    concurrencies = concurrencies or list(DEFAULT_CONCURRENCY)
    res = Results(machine(client), started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  source=source_commit(project.root()))  # fmt: skip
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="smtp-out-bench-") as tmp:
        material = Material.create(Path(tmp) / "material")
        if "image" in parts:
            progress("image: size, cold build, rebuild after a config edit")
            bench_image(client, res, repeats, progress)
        if "startup" in parts:
            progress("start-up: to the 220 banner and to healthy")
            bench_startup(client, material, res, repeats + 2, progress)
            bench_health_cost(client, material, res, progress)
        if "checks" in parts:
            progress("checks: smoke-test and config-test against the spec's recipes")
            bench_checks(client, material, res, repeats, progress)
        if "report" in parts:
            progress("report: the burn-in report on a day of logs")
            bench_report(client, res, repeats, Path(tmp), progress)
        if "load" in parts:
            progress(
                f"load: {repeats} x {load_messages} messages at concurrency {concurrencies}, "
                f"then a burst of {burst}"
            )
            bench_load(
                client, res, count=load_messages, concurrencies=concurrencies, workdir=Path(tmp), p=progress,
                burst_count=burst, repeats=repeats,
            )  # fmt: skip
        if "rollout" in parts:
            progress("rollout: cutover and rollback under traffic")
            bench_rollout(client, res, repeats, Path(tmp), progress)
    res.seconds = time.perf_counter() - t0
    return res
