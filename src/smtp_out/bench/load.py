"""Load: messages from the app (10.5.5.100) over STARTTLS through the relay to an MX, with DKIM
signing on and off, at several client concurrencies; and a burst of 10,000 signed messages.

Two MXs. Throughput is measured with Postfix's own smtp-sink (from the relay image; written in
C, it stores nothing): on this 2-core machine the aiosmtpd sink costs ~1.35 ms of CPU per message,
as much as signing does, so it would limit what is measured. The aiosmtpd sink (it stores every
message: loss and signatures are checked on the content) runs at the top concurrency and for the
burst. Deliveries are timed by the relay's own log (Docker's timestamps on each `status=sent`
line, read from the engine's log file on the host, so that waiting costs the engine nothing) and
signatures counted by OpenDKIM's line for each, the same way for both MXs.

Every run starts a fresh relay with the settings the image ships (its own healthcheck, no test
knobs), and measures what each message cost in CPU, by component (bench.cost); the burst also
measures the relay's memory peak over the burst alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

from .. import IMAGE, LABEL
from ..engine.containers import exec_text, logs, unique, wait_for_health, wait_for_log
from ..engine.polling import poll
from ..ops.queue import listing
from ..ops.report.logparse import SIGNED_MARK
from ..progress import Progress
from ..testing.network import SINK_IP, SubmitResult, TestNet, build_peer_image, open_testnet
from . import cost
from .results import BenchFailed, Figure, Results

LOAD_RCPTS = ("reader@example.com", "reader@example.net", "reader@example.org")
#: Seconds of idle before each run, for the idle rate of every CPU source.
IDLE_SECONDS = 2.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def docker_time(stamp: str) -> float:
    """A Docker log timestamp (RFC 3339 with up to nanoseconds, trailing zeros trimmed) as epoch
    seconds."""
    stamp = stamp.rstrip("Z")
    whole, _, frac = stamp.partition(".")
    return dt.datetime.fromisoformat(f"{whole}.{(frac + '000000')[:6]}+00:00").timestamp()


class HostLog:
    """A container's json-file log read on the engine's host, from where it was when created:
    the times of its `status=sent` lines, without an API call the engine would pay for."""

    def __init__(self, container: Container) -> None:
        container.reload()
        self.path = Path(str(container.attrs.get("LogPath") or ""))
        if not self.path.is_file():
            raise BenchFailed(f"cannot read the relay's log file {self.path or '(none)'}: run the bench on "
                              "the engine's host, as root, with the json-file log driver")  # fmt: skip
        self._offset = 0
        self._partial = b""
        self.sent: list[float] = []

    def sent_times(self) -> list[float]:
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = self._partial + f.read()
            self._offset = f.tell()
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            if b"status=sent" in line:
                self.sent.append(docker_time(json.loads(line)["time"]))
        return self.sent


def _smtp_sink(net: TestNet) -> Container:
    """Postfix's smtp-sink at the MX's address, in place of the aiosmtpd sink."""
    net.sink.stop(timeout=2)
    endpoint = net.client.api.create_endpoint_config(ipv4_address=SINK_IP)
    return net.client.containers.run(
        IMAGE, entrypoint=["/usr/sbin/smtp-sink"], command=["-u", "postfix", f"{SINK_IP}:25", "256"],
        detach=True, name=unique("smtp-out-smtp-sink"), labels={LABEL: "1"}, network=net.prod,
        networking_config={net.prod: endpoint},
    )  # fmt: skip


@dataclass
class Measured:
    """What the measured window of a load run saw."""

    sub: SubmitResult
    sent: list[float]
    t0: float
    seconds: dict[str, float]  # CPU by component, net of the idle rate
    idle: dict[str, float]  # CPU by component over the idle window before
    memory: dict[str, Any]


def _start_relay(net: TestNet, signing: bool) -> Container:
    """A fresh relay as the image ships it (its own healthcheck, no test knobs), started up."""
    relay = net.start_smtp_out(health_interval_s=None, fast_retry=False)
    wait_for_health(relay, "healthy", timeout=30, interval=0.1)  # start-up is over
    if not signing:  # the same image with the milter taken out, for the signing overhead
        exec_text(relay, "postconf -e smtpd_milters= non_smtpd_milters= && postfix reload")
        wait_for_log(relay, r"postfix/master\[1\]: reload -- ", timeout=15)
    return relay


def _measure(net: TestNet, relay: Container, sink: Container, count: int, concurrency: int, *,
             memory: bool) -> Measured:  # fmt: skip
    """Idle window, then the submission until every accepted message is delivered; CPU of every
    source over both (bench.cost), and the relay's memory when asked."""
    log = HostLog(relay)
    rid = str(relay.id)
    sources = cost.Sources(rid, cost.engine_pids(int(relay.attrs["State"]["Pid"])), str(net.app.id),
                           str(sink.id))  # fmt: skip
    idle0 = sources.snapshot()
    time.sleep(IDLE_SECONDS)
    s0 = sources.snapshot()
    mem: dict[str, Any] = {}
    if memory:
        cost.reset_peak(rid)
        mem["before"] = cost.read_memory(rid)
    with cost.MemorySampler(rid) if memory else contextlib.nullcontext() as sampler:
        t0 = time.time()
        sub = net.submit(list(LOAD_RCPTS), count=count, concurrency=concurrency)
        sent = poll(lambda: s if len(s := log.sent_times()) >= sub.accepted else None,
                    timeout=600, interval=0.1, seen=lambda: "not all delivered")  # fmt: skip
        s1 = sources.snapshot()
    if isinstance(sampler, cost.MemorySampler):
        mem.update(after=cost.read_memory(rid), sampled_peaks=sampler.peaks, samples=sampler.samples)
    idle = cost.window(idle0, s0)
    seconds = cost.net_of_idle(
        cost.window(s0, s1), s1["relay"].at - s0["relay"].at, idle, s0["relay"].at - idle0["relay"].at
    )
    return Measured(sub, list(sent), t0, seconds, idle, mem)


def load_run(
    net: TestNet, count: int, concurrency: int, *, signing: bool, mx: str = "aiosmtpd", memory: bool = False
) -> dict[str, Any]:
    """One run: a fresh relay as the image ships it, `count` messages at `concurrency`
    connections; a result row with the CPU each message cost (and, with `memory`, the relay's
    memory over the run alone)."""
    net.clear_sink()
    sink = _smtp_sink(net) if mx == "smtp-sink" else None
    try:
        relay = _start_relay(net, signing)
        m = _measure(net, relay, sink or net.sink, count, concurrency, memory=memory)
    finally:
        if sink is not None:
            sink.remove(force=True)
            net.sink_up()
    sub, sent, t0 = m.sub, m.sent, m.t0
    latencies = [float(r["latency"]) for r in sub.results if r["code"] == 250]
    signed_lines = sum(SIGNED_MARK in ln for ln in logs(net.relay).splitlines())
    row: dict[str, Any] = {
        "run": "load", "messages": count, "concurrency": concurrency, "signing": signing, "mx": mx,
        "accepted": sub.accepted,
        "accepted_per_s": sub.accepted / sub.elapsed, "delivered_per_s": len(sent) / (max(sent) - t0),
        "p50_latency_ms": 1000 * _percentile(latencies, 0.5),
        "p99_latency_ms": 1000 * _percentile(latencies, 0.99),
        "submit_seconds": sub.elapsed, "deliver_seconds": max(sent) - t0,
        "cpu_ms_per_message": cost.per_message_ms(m.seconds, len(sent)),
        "idle_cpu_percent_of_a_core": {k: 100 * v / IDLE_SECONDS for k, v in m.idle.items()},
    }  # fmt: skip
    if memory:
        row["memory"] = m.memory
    if mx == "aiosmtpd":
        msgs = net.wait_for_received(sub.accepted, timeout=60)
        seqs = {msg.header_seq for msg in msgs}
        row["lost"] = count - len(seqs & set(range(count)))
        row["signed"] = sum(1 for msg in msgs if b"DKIM-Signature:" in msg.raw.split(b"\n\n", 1)[0])
    else:
        row["lost"] = count - len(sent)
        row["signed"] = signed_lines
    return row


def burst(net: TestNet, count: int = 10_000, concurrency: int = 16) -> dict[str, Any]:
    """`count` signed messages at `concurrency` connections into a fresh relay; time until the
    queue is empty again, and the relay's memory over the burst alone (peak reset before it)."""
    row = {**load_run(net, count, concurrency, signing=True, mx="aiosmtpd", memory=True), "run": "burst"}
    row["queue_left"] = len(listing.messages(net.relay))
    return row


def memory_figures(row: dict[str, Any]) -> list[Figure]:
    """The burst's memory, each figure labelled with how it was taken (cgroup v1; v2 in the note)."""
    mem = row["memory"]
    before, after, peaks = mem["before"], mem["after"], mem["sampled_peaks"]
    what = f"burst: relay memory ({row['messages']:,} messages)"
    mb = 1e6
    return [
        Figure(f"{what}: peak, page cache included", "MB", [after["max_usage_in_bytes"] / mb],
               note="cgroup v1 memory.max_usage_in_bytes, reset (0 written) just before the burst, so "
                    f"the peak of the burst alone; {before['usage_in_bytes'] / mb:.1f} MB in use before it "
                    "(v2: memory.peak of a fresh container)"),
        Figure(f"{what}: processes' own memory, sampled peak", "MB", [peaks.get("total_rss", 0) / mb],
               note=f"cgroup v1 memory.stat total_rss, sampled every 0.25 s ({mem['samples']} samples); "
                    f"{before.get('total_rss', 0) / mb:.1f} MB before the burst (v2: memory.stat anon)"),
        Figure(f"{what}: kernel memory, peak", "MB", [after.get("kmem_max_usage_in_bytes", 0) / mb],
               note="cgroup v1 memory.kmem.max_usage_in_bytes, reset with the above (sockets, slab, page "
                    "tables: v1 counts them in the usage peak too; v2: memory.stat kernel)"),
        Figure(f"{what}: page cache, sampled peak", "MB", [peaks.get("total_cache", 0) / mb],
               note="cgroup v1 memory.stat total_cache (the queue files on the mounted spool among it), "
                    f"sampled with the above; {before.get('total_cache', 0) / mb:.1f} MB before the burst "
                    "(v2: memory.stat file)"),
    ]  # fmt: skip


def bench_load(
    client: docker.DockerClient,
    res: Results,
    *,
    count: int,
    concurrencies: list[int],
    workdir: Path,
    p: Progress,
    burst_count: int = 0,
    repeats: int = 3,
) -> None:
    build_peer_image(client)
    with open_testnet(client, workdir / "testnet") as net:
        for conc in concurrencies:
            for signing in (True, False):
                for _ in range(repeats):
                    row = load_run(net, count, conc, signing=signing, mx="smtp-sink")
                    res.load.append(row)
                    p(_line(row))
        for signing in (True, False):  # the top concurrency again, every message checked at the MX
            for _ in range(repeats):
                row = load_run(net, count, max(concurrencies), signing=signing, mx="aiosmtpd")
                res.load.append(row)
                p(_line(row))
        if burst_count:
            row = burst(net, burst_count, max(concurrencies))
            res.load.append(row)
            what = f"burst: {burst_count:,} signed messages at {row['concurrency']} connections"
            fig = res.add(Figure(f"{what}: submitted to queue drained", "s", [row["deliver_seconds"]]), p)
            fig.note = (
                f"{row['delivered_per_s']:.0f} msg/s; lost {row['lost']}, signed {row['signed']}, "
                f"left in the queue {row['queue_left']}"
            )
            for f in memory_figures(row):
                res.add(f, p)


def _line(row: dict[str, Any]) -> str:
    return (
        f"  load c={row['concurrency']} signing={row['signing']} mx={row['mx']}: "
        f"accepted {row['accepted_per_s']:.0f}/s,"
        f" delivered {row['delivered_per_s']:.0f}/s, p50 {row['p50_latency_ms']:.0f} ms, lost {row['lost']},"
        f" relay with logging {cost.relay_with_logging_ms(row['cpu_ms_per_message']):.2f} ms CPU per message"
    )
