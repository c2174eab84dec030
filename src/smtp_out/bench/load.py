"""Load: messages from the app (10.5.5.100) over STARTTLS through the relay to the sink MX,
with DKIM signing on and off, at several client concurrencies."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker

from ..engine.containers import exec_text, wait_for_log
from ..testing.network import TestNet, build_peer_image, open_testnet
from .results import Progress, Results

LOAD_RCPTS = ("reader@example.com", "reader@example.net", "reader@example.org")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_run(net: TestNet, count: int, concurrency: int, signing: bool) -> dict[str, Any]:
    """One run: a fresh relay, `count` messages at `concurrency` connections; a result row."""
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
