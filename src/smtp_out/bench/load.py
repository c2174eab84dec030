"""Load: messages from the app (10.5.5.100) over STARTTLS through the relay to an MX, with DKIM
signing on and off, at several client concurrencies; and a burst of 10,000 signed messages.

Two MXs. Throughput is measured with Postfix's own smtp-sink (from the relay image; written in
C, it stores nothing): on this 2-core machine the aiosmtpd sink costs ~1.35 ms of CPU per message,
as much as signing does, so it would limit what is measured. The aiosmtpd sink (it stores every
message: loss and signatures are checked on the content) runs at the top concurrency and for the
burst. Deliveries are timed by the relay's own log (Docker's timestamps on each `status=sent`
line) and signatures counted by OpenDKIM's line for each, the same way for both MXs.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

from .. import IMAGE, LABEL
from ..engine.containers import exec_text, logs, unique, wait_for_log
from ..engine.polling import poll
from ..ops.queue import listing
from ..ops.report.logparse import SIGNED_MARK
from ..progress import Progress
from ..testing.network import SINK_IP, TestNet, build_peer_image, open_testnet
from .results import Figure, Results

LOAD_RCPTS = ("reader@example.com", "reader@example.net", "reader@example.org")
#: The relay's own test knob: enough parallel deliveries per destination for the load.
LOAD_ENV = {"POSTFIX_default_destination_concurrency_limit": "20"}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _sent_times(relay: Container) -> list[float]:
    """Docker's timestamp of every `status=sent` line of the relay's log, as epoch seconds."""
    out = []
    for line in logs(relay, timestamps=True).splitlines():
        if "status=sent" in line:
            stamp = line.split(" ", 1)[0]
            out.append(dt.datetime.fromisoformat(stamp[:26] + "+00:00").timestamp())
    return out


def _smtp_sink(net: TestNet) -> Container:
    """Postfix's smtp-sink at the MX's address, in place of the aiosmtpd sink."""
    net.sink.stop(timeout=2)
    endpoint = net.client.api.create_endpoint_config(ipv4_address=SINK_IP)
    return net.client.containers.run(
        IMAGE, entrypoint=["/usr/sbin/smtp-sink"], command=["-u", "postfix", f"{SINK_IP}:25", "256"],
        detach=True, name=unique("smtp-out-smtp-sink"), labels={LABEL: "1"}, network=net.prod,
        networking_config={net.prod: endpoint},
    )  # fmt: skip


def load_run(
    net: TestNet, count: int, concurrency: int, *, signing: bool, mx: str = "aiosmtpd"
) -> dict[str, Any]:
    """One run: a fresh relay, `count` messages at `concurrency` connections; a result row."""
    net.clear_sink()
    sink = _smtp_sink(net) if mx == "smtp-sink" else None
    try:
        net.start_smtp_out(env=LOAD_ENV)
        if not signing:  # the same image with the milter taken out, for the signing overhead
            exec_text(net.relay, "postconf -e smtpd_milters= non_smtpd_milters= && postfix reload")
            wait_for_log(net.relay, r"postfix/master\[1\]: reload -- ", timeout=15)
        t0 = time.time()
        sub = net.submit(list(LOAD_RCPTS), count=count, concurrency=concurrency)
        sent = poll(lambda: s if len(s := _sent_times(net.relay)) >= sub.accepted else None,
                    timeout=600, interval=0.5, seen=lambda: "not all delivered")  # fmt: skip
    finally:
        if sink is not None:
            sink.remove(force=True)
            net.sink_up()
    latencies = [float(r["latency"]) for r in sub.results if r["code"] == 250]
    signed_lines = sum(SIGNED_MARK in ln for ln in logs(net.relay).splitlines())
    row: dict[str, Any] = {
        "run": "load", "messages": count, "concurrency": concurrency, "signing": signing, "mx": mx,
        "accepted": sub.accepted,
        "accepted_per_s": sub.accepted / sub.elapsed, "delivered_per_s": len(sent) / (max(sent) - t0),
        "p50_latency_ms": 1000 * _percentile(latencies, 0.5),
        "p99_latency_ms": 1000 * _percentile(latencies, 0.99),
        "submit_seconds": sub.elapsed, "deliver_seconds": max(sent) - t0,
    }  # fmt: skip
    if mx == "aiosmtpd":
        msgs = net.wait_for_received(sub.accepted, timeout=60)
        seqs = {m.header_seq for m in msgs}
        row["lost"] = count - len(seqs & set(range(count)))
        row["signed"] = sum(1 for m in msgs if b"DKIM-Signature:" in m.raw.split(b"\n\n", 1)[0])
    else:
        row["lost"] = count - len(sent)
        row["signed"] = signed_lines
    return row


def _peak_memory_mb(container: Container) -> float:
    stats = container.stats(stream=False)
    assert isinstance(stats, dict)
    mem = stats.get("memory_stats", {})
    return int(mem.get("max_usage") or mem.get("usage") or 0) / 1e6


def burst(net: TestNet, count: int = 10_000, concurrency: int = 16) -> dict[str, Any]:
    """`count` signed messages at `concurrency` connections; time until the queue is empty again,
    and the relay container's peak memory."""
    row = {**load_run(net, count, concurrency, signing=True, mx="aiosmtpd"), "run": "burst"}
    row["queue_left"] = len(listing.messages(net.relay))
    row["peak_memory_mb"] = _peak_memory_mb(net.relay)
    return row


def bench_load(
    client: docker.DockerClient,
    res: Results,
    *,
    count: int,
    concurrencies: list[int],
    workdir: Path,
    p: Progress,
    burst_count: int = 0,
) -> None:
    build_peer_image(client)
    with open_testnet(client, workdir / "testnet") as net:
        for conc in concurrencies:
            for signing in (True, False):
                row = load_run(net, count, conc, signing=signing, mx="smtp-sink")
                res.load.append(row)
                p(_line(row))
        for signing in (True, False):  # the top concurrency again, every message checked at the MX
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
            res.add(Figure(f"{what}: relay's peak memory", "MB", [row["peak_memory_mb"]]), p)


def _line(row: dict[str, Any]) -> str:
    return (
        f"  load c={row['concurrency']} signing={row['signing']} mx={row['mx']}: "
        f"accepted {row['accepted_per_s']:.0f}/s,"
        f" delivered {row['delivered_per_s']:.0f}/s, p50 {row['p50_latency_ms']:.0f} ms, lost {row['lost']}"
    )
