"""Benchmarks: how fast the image builds, starts, is checked and relays.

Every figure is min/median/max over repeated runs, and every comparison is a ratio measured in
the same run, because these machines are noisy. Results go to bench/results/latest.{md,json,png}.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from . import IMAGE, IMAGE_CONTEXT, LABEL, REPO_ROOT, configtest, smoke
from .containers import (
    SmtpOutOptions,
    address,
    exec_text,
    removing,
    run_smtp_out,
    unique,
    wait_for_banner,
    wait_for_health,
    wait_for_log,
)
from .images import ImageSpec, build
from .material import Material
from .testnet import TestNet, build_peer_image, open_testnet

RESULTS = REPO_ROOT / "bench" / "results"
SPEC_SMOKE = REPO_ROOT / "bench" / "spec_smoke_test.sh"
SPEC_CONFIG = REPO_ROOT / "bench" / "spec_config_test.sh"
Progress = Callable[[str], None]


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


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def machine() -> dict[str, str]:
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
        server = str(docker.from_env().version().get("Version", ""))
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "docker_engine": server,
    }


# --- 1. image ----------------------------------------------------------------------------


def bench_image(client: docker.DockerClient, res: Results, repeats: int, progress: Progress) -> None:
    size = int(client.images.get(IMAGE).attrs["Size"])
    res.add(Figure("image size", "MB", [size / 1e6]), progress)
    tag = "smtp-out-bench"
    with tempfile.TemporaryDirectory(prefix="smtp-out-bench-ctx-") as tmp:
        ctx = Path(tmp) / "ctx"
        shutil.copytree(IMAGE_CONTEXT, ctx)
        spec = ImageSpec(tag, ctx)
        cold = []
        for _ in range(max(1, repeats - 1)):
            t = time.perf_counter()
            if _exists(client, tag):
                client.api.remove_image(tag, force=True)
            for _chunk in client.api.build(path=str(ctx), tag=tag, nocache=True, rm=True, decode=True):
                pass
            cold.append(time.perf_counter() - t)
        res.add(Figure("cold build (no cache)", "s", cold), progress)
        warm = []
        for i in range(repeats):
            with (ctx / "etc" / "postfix" / "virtual").open("a") as f:
                f.write(f"# bench edit {i} {time.time()}\n")
            warm.append(timed(lambda: build(client, spec, lambda line: None)))
        res.add(Figure("rebuild after editing etc/postfix/virtual", "s", warm, note="layer cache"), progress)
    with contextlib.suppress(docker.errors.APIError):
        client.api.remove_image(tag, force=True)


def _exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


# --- 2. start-up -------------------------------------------------------------------------


def bench_startup(
    client: docker.DockerClient, material: Material, res: Results, repeats: int, p: Progress
) -> None:
    net = client.networks.create(unique("smtp-out-bench"), internal=True, labels={LABEL: "1"})
    banner, healthy = [], []
    try:
        for _ in range(repeats):
            t = time.perf_counter()
            c = run_smtp_out(client, SmtpOutOptions(network=str(net.name), material=material))
            with removing(c):
                wait_for_banner(c, address(c, str(net.name)), interval=0.02)
                banner.append(time.perf_counter() - t)
                wait_for_health(c, "healthy", timeout=60, interval=0.05)
                healthy.append(time.perf_counter() - t)
    finally:
        net.remove()
    fig = res.add(Figure("docker run -> 220 banner on 587", "s", banner, target="< 2 s"), p)
    fig.met = fig.median < 2.0
    res.add(
        Figure(
            "docker run -> healthcheck healthy", "s", healthy,
            note="first check runs one --interval (5 s) after start: Docker 20.10 has no --start-interval",
        ),
        p,
    )  # fmt: skip


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
            spec.append(timed(lambda: _run(["bash", str(SPEC_SMOKE)], env=env, expect=None)))
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
        spec_cfg.append(timed(lambda: _run(["bash", str(SPEC_CONFIG)], expect=None)))
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


def _must(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(what)


def _run(argv: list[str], env: dict[str, str] | None = None, expect: int | None = 0) -> None:
    r = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=120)
    if expect is not None and r.returncode != expect:
        raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}: {r.stdout[-500:]}{r.stderr[-500:]}")


# --- 4. load -----------------------------------------------------------------------------

LOAD_RCPTS = ("reader@example.com", "reader@example.net", "reader@example.org")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_run(net: TestNet, count: int, concurrency: int, signing: bool) -> dict[str, Any]:
    net.clear_sink()
    net.start_smtp_out(env={"POSTFIX_default_destination_concurrency_limit": "20"})
    if not signing:  # the same image with the milter taken out, for the signing overhead
        exec_text(net.relay, "postconf -e smtpd_milters= non_smtpd_milters= && postfix reload")
        wait_for_log(net.relay, r"postfix/master\[1\]: reload -- ", timeout=15)
    t0 = time.time()
    sub = net.submit(list(LOAD_RCPTS), count=count, concurrency=concurrency)
    msgs = net.wait_for_received(sub.accepted, timeout=600, interval=0.05)
    delivered_s = max(m.arrived for m in msgs) - t0
    seqs = {m.header_seq for m in msgs}
    signed = sum(1 for m in msgs if b"DKIM-Signature:" in m.raw.split(b"\n\n", 1)[0])
    latencies = [float(r["latency"]) for r in sub.results if r["code"] == 250]
    return {
        "messages": count,
        "concurrency": concurrency,
        "signing": signing,
        "accepted": sub.accepted,
        "accepted_per_s": sub.accepted / sub.elapsed,
        "delivered_per_s": len(msgs) / delivered_s,
        "p50_latency_ms": 1000 * _percentile(latencies, 0.50),
        "p99_latency_ms": 1000 * _percentile(latencies, 0.99),
        "lost": count - len(seqs & set(range(count))),
        "signed": signed,
        "submit_seconds": sub.elapsed,
        "deliver_seconds": delivered_s,
    }


def bench_load(
    client: docker.DockerClient,
    res: Results,
    *,
    count: int,
    concurrencies: list[int],
    workdir: Path,
    p: Progress,
) -> None:
    build_peer_image(client)
    with open_testnet(client, workdir / "testnet") as net:
        for conc in concurrencies:
            for signing in (True, False):
                row = load_run(net, count, conc, signing)
                res.load.append(row)
                p(
                    f"  load c={conc} signing={signing}: accepted {row['accepted_per_s']:.0f}/s, delivered "
                    f"{row['delivered_per_s']:.0f}/s, p50 {row['p50_latency_ms']:.0f} ms, "
                    f"p99 {row['p99_latency_ms']:.0f} ms, lost {row['lost']}"
                )


# --- reports -----------------------------------------------------------------------------


def signing_overhead(load: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(concurrency, delivered/s without signing / with signing) for each concurrency."""
    out = []
    for conc in sorted({r["concurrency"] for r in load}):
        on = next(r for r in load if r["concurrency"] == conc and r["signing"])
        off = next(r for r in load if r["concurrency"] == conc and not r["signing"])
        out.append((conc, off["delivered_per_s"] / on["delivered_per_s"]))
    return out


def render_markdown(res: Results) -> str:
    m = res.machine
    lines = [
        "# smtp-out benchmarks",
        "",
        f"Run {res.started} in {res.seconds:.0f} s on {m['cpus']} CPUs ({m['cpu']}), {m['memory']}, "
        f"kernel {m['kernel']}, Docker Engine {m['docker_engine']}, Python {m['python']}.",
        "Figures are min / median / max over repeated runs; ratios are measured within this run.",
        "",
        "| figure | unit | min | median | max | target | met | note |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for f in res.figures:
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        cells = [f.name, f.unit, f"{f.min:.3f}", f"{f.median:.3f}", f"{f.max:.3f}", f.target, met, f.note]
        lines.append("| " + " | ".join(cells) + " |")
    if res.load:
        lines += [
            "",
            f"## Load: {res.load[0]['messages']} messages from the app (10.5.5.100), STARTTLS, to a sink MX",
            "",
            "| concurrency | DKIM signing | accepted/s | delivered/s | p50 submit ms | p99 submit ms | lost "
            "| signed |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in res.load:
            lines.append(
                f"| {r['concurrency']} | {'on' if r['signing'] else 'off'} | {r['accepted_per_s']:.0f} | "
                f"{r['delivered_per_s']:.0f} | {r['p50_latency_ms']:.0f} | {r['p99_latency_ms']:.0f} | "
                f"{r['lost']} | {r['signed']} |"
            )
        lines += ["", "Signing overhead (delivered/s without signing / with signing, target < 1.3x):", ""]
        for conc, ratio in signing_overhead(res.load):
            lines.append(f"- concurrency {conc}: {ratio:.2f}x ({'met' if ratio < 1.3 else '**missed**'})")
        best = max(r["delivered_per_s"] for r in res.load if r["signing"])
        lost = sum(r["lost"] for r in res.load)
        lines.append(
            f"- best signed delivery rate {best:.0f}/s "
            f"(target >= 100/s: {'met' if best >= 100 else '**missed**'}); lost in all runs: {lost}"
        )
    lines += ["", "![chart](latest.png)", ""]
    return "\n".join(lines)


def render_chart(res: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timing = [f for f in res.figures if f.unit == "s"]
    fig, axes = plt.subplots(1, 2 if res.load else 1, figsize=(15, 6), squeeze=False)
    ax = axes[0][0]
    names = [f.name for f in timing]
    med = [f.median for f in timing]
    err = [[f.median - f.min for f in timing], [f.max - f.median for f in timing]]
    ax.barh(names, med, xerr=err, color="#4477aa", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("seconds (median, min-max whiskers, log scale)")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("smtp-out timings")
    if res.load:
        ax2 = axes[0][1]
        concs = sorted({r["concurrency"] for r in res.load})
        for signing, color in ((True, "#228833"), (False, "#bbbbbb")):
            rows = [
                next(r for r in res.load if r["concurrency"] == c and r["signing"] == signing) for c in concs
            ]
            label = "signed" if signing else "milter off"
            ax2.plot(
                concs,
                [r["delivered_per_s"] for r in rows],
                marker="o",
                color=color,
                label=f"delivered/s, {label}",
            )
            ax2.plot(
                concs,
                [r["accepted_per_s"] for r in rows],
                marker="s",
                ls="--",
                color=color,
                label=f"accepted/s, {label}",
            )
        ax2.axhline(100, color="#cc3311", ls=":", label="target 100/s")
        ax2.set_xscale("log", base=2)
        ax2.set_xticks(concs, [str(c) for c in concs])
        ax2.set_xlabel("concurrent client connections")
        ax2.set_ylabel("messages per second")
        ax2.set_title(f"load: {res.load[0]['messages']} messages per run")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(res: Results, out_dir: Path = RESULTS) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "latest.md", "json": out_dir / "latest.json", "png": out_dir / "latest.png"}
    paths["md"].write_text(render_markdown(res))
    data = {
        "started": res.started, "seconds": res.seconds, "machine": res.machine,
        "figures": [f.to_dict() for f in res.figures], "load": res.load,
        "signing_overhead": signing_overhead(res.load) if res.load else [],
    }  # fmt: skip
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")
    render_chart(res, paths["png"])
    return paths


def run(
    client: docker.DockerClient,
    *,
    repeats: int = 3,
    load_messages: int = 1000,
    concurrencies: list[int] | None = None,
    parts: tuple[str, ...] = ("image", "startup", "checks", "load"),
    progress: Progress = print,
) -> Results:
    """Run the chosen parts; the smtp-out image must be built (invoke build-docker-images)."""
    res = Results(machine(), started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="smtp-out-bench-") as tmp:
        material = Material.create(Path(tmp) / "material")
        if "image" in parts:
            progress("image: size, cold build, rebuild after a config edit")
            bench_image(client, res, repeats, progress)
        if "startup" in parts:
            progress("start-up: to the 220 banner and to healthy")
            bench_startup(client, material, res, repeats + 2, progress)
        if "checks" in parts:
            progress("checks: smoke-test and config-test against the spec's recipes")
            bench_checks(client, material, res, repeats, progress)
        if "load" in parts:
            progress(f"load: {load_messages} messages at concurrency {concurrencies or [1, 4, 16]}")
            bench_load(
                client, res, count=load_messages, concurrencies=concurrencies or [1, 4, 16],
                workdir=Path(tmp), p=progress,
            )  # fmt: skip
    res.seconds = time.perf_counter() - t0
    return res
