"""A hermetic copy of the production network, for the integration tests and the benchmarks.

Two --internal Docker networks; nothing can leave them:

    prod     10.5.5.0/24   smtp-out .10, the app .100, resolver (dnsmasq) .53, sink MX .25
    outside  100.64.0.0/24 smtp-out .10, an outsider .100 (not in mynetworks)

The resolver answers MX, A and AAAA for every test domain (the throttled ones included) and
points them at the sink, which stores each message with its arrival time in a host folder.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import docker
import docker.errors
from docker.models.containers import Container

from . import IMAGE, LABEL, REPO_ROOT
from .containers import (
    SmtpOutOptions,
    exec_text,
    internal_network,
    logs,
    run_smtp_out,
    unique,
    wait_for_banner,
    wait_for_log,
)
from .images import ImageSpec, build
from .material import Material

PEER_IMAGE = "smtp-out-peer"
PEER_CONTEXT = REPO_ROOT / "tests" / "peer"

PROD_SUBNET, OUTSIDE_SUBNET = "10.5.5.0/24", "100.64.0.0/24"
SMTP_OUT_IP, APP_IP, DNS_IP, SINK_IP = "10.5.5.10", "10.5.5.100", "10.5.5.53", "10.5.5.25"
SMTP_OUT_OUTSIDE_IP, OUTSIDER_IP = "100.64.0.10", "100.64.0.100"
SINK_HOST, SINK_IPV6 = "mx.sink.test", "fd00:5::25"

#: Domains the resolver serves: the throttled ones, the alias target, and plain ones.
MAIL_DOMAINS = (
    "example.com",
    "example.net",
    "example.org",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "yahoo.com",
    "bigpond.com",
    "comcast.net",
)

#: Retry deferred mail within seconds, not Postfix's default minutes (test knobs only).
FAST_RETRY = {
    "POSTFIX_queue_run_delay": "2s",
    "POSTFIX_minimal_backoff_time": "2s",
    "POSTFIX_maximal_backoff_time": "4s",
}


def dnsmasq_command(domains: Sequence[str] = MAIL_DOMAINS) -> list[str]:
    """dnsmasq answering only from its own records: MX for each domain -> the sink, A and AAAA
    for the sink and the domains; anything else is refused at once (no upstream)."""
    cmd = [
        "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--log-queries",
        "--log-facility=-", f"--listen-address={DNS_IP}", "--bind-interfaces",
        f"--host-record={SINK_HOST},{SINK_IP},{SINK_IPV6}",
        f"--ptr-record={'.'.join(reversed(APP_IP.split('.')))}.in-addr.arpa,app",
    ]  # fmt: skip
    for d in domains:
        cmd += [f"--mx-host={d},{SINK_HOST},10", f"--host-record={d},{SINK_IP},{SINK_IPV6}"]
    return cmd


@dataclass(frozen=True)
class SinkMessage:
    raw: bytes
    arrived: float
    peer: str
    mail_from: str
    rcpt_tos: tuple[str, ...]

    @property
    def header_seq(self) -> int | None:
        for line in self.raw.split(b"\n"):
            if line.lower().startswith(b"x-test-seq:"):
                return int(line.split(b":", 1)[1])
            if not line.strip():
                break
        return None


@dataclass
class SubmitResult:
    elapsed: float
    accepted: int
    tls: list[str]
    results: list[dict[str, Any]]

    @property
    def codes(self) -> list[int]:
        return [int(r["code"]) for r in self.results]


@dataclass
class TestNet:
    """The running network; `open_testnet` creates it and removes it afterwards."""

    __test__ = False  # not a pytest test class

    client: docker.DockerClient
    workdir: Path
    material: Material
    prod: str
    outside: str
    dns: Container
    sink: Container
    app: Container
    outsider: Container
    smtp_out: Container | None = None
    spool: Path | None = None

    # --- smtp-out -------------------------------------------------------------------------

    def start_smtp_out(
        self,
        spool: Path | None = None,
        env: Mapping[str, str] | None = None,
        image: str = IMAGE,
        wait: bool = True,
        health_interval_s: float | None = 1.0,
    ) -> Container:
        """(Re)place the smtp-out container: on prod at .10 and outside at .10, resolving through
        the test resolver, with the run's material and `spool` (default workdir/spool)."""
        self.remove_smtp_out()
        self.spool = spool or self.workdir / "spool"
        self.spool.mkdir(parents=True, exist_ok=True)
        opts = SmtpOutOptions(
            image=image,
            name=unique("smtp-out-it"),
            network=self.prod,
            ipv4_address=SMTP_OUT_IP,
            material=self.material,
            spool=self.spool,
            env={**FAST_RETRY, **(env or {})},
            extra_volumes={str(self.workdir / "resolv.conf"): {"bind": "/etc/resolv.conf", "mode": "ro"}},
            health_interval_s=health_interval_s,
        )
        container = run_smtp_out(self.client, opts)
        self.client.networks.get(self.outside).connect(container, ipv4_address=SMTP_OUT_OUTSIDE_IP)
        self.smtp_out = container
        if wait:
            wait_for_banner(container, SMTP_OUT_IP, timeout=30)
        return container

    def remove_smtp_out(self) -> None:
        if self.smtp_out is not None:
            with contextlib.suppress(docker.errors.APIError):
                self.smtp_out.remove(force=True, v=True)
            self.smtp_out = None

    @property
    def relay(self) -> Container:
        if self.smtp_out is None:
            raise RuntimeError("smtp-out is not running: call start_smtp_out() first")
        return self.smtp_out

    def relay_logs(self) -> str:
        return logs(self.relay)

    def wait_for_delivery(self, queue_ids: Sequence[str], timeout: float = 30.0) -> dict[str, str]:
        """Wait until Postfix has logged a final delivery status for each queue id; returns
        queue id -> that log line. The sink stores a message before Postfix reads its 250 and logs
        `status=sent`, so a test that saw the message arrive waits here for the log line."""
        lines: dict[str, str] = {}
        for qid in queue_ids:
            pattern = rf"\b{re.escape(qid)}: to=<.*status=(sent|bounced|expired)"
            lines[qid] = wait_for_log(self.relay, pattern, timeout=timeout)[-1]
        return lines

    def queue_ids(self) -> list[str]:
        """Queue ids of every message in the relay's queue (postqueue -j)."""
        _, out = exec_text(self.relay, "postqueue -j")
        return [json.loads(line)["queue_id"] for line in out.splitlines() if line.startswith("{")]

    # --- clients --------------------------------------------------------------------------

    def submit(
        self,
        to: Sequence[str] | str,
        count: int = 1,
        concurrency: int = 1,
        *,
        outsider: bool = False,
        extra: Sequence[str] = (),
        timeout: float = 600,
    ) -> SubmitResult:
        """Submit from the app (10.5.5.100), or from the outsider (100.64.0.100), over STARTTLS
        verified against the test CA."""
        client, host = (self.outsider, SMTP_OUT_OUTSIDE_IP) if outsider else (self.app, SMTP_OUT_IP)
        rcpts = [to] if isinstance(to, str) else list(to)
        argv = ["python3", "/peer/submit.py", "--host", host, "--count", str(count)]
        argv += ["--concurrency", str(concurrency), *extra]
        for r in rcpts:
            argv += ["--to", r]
        result = client.exec_run(argv, demux=True)
        out, err = cast(tuple[bytes | None, bytes | None], result.output)
        if result.exit_code != 0:
            raise RuntimeError(f"submit.py failed ({result.exit_code}): {(err or b'').decode()[-2000:]}")
        data = json.loads((out or b"{}").decode())
        return SubmitResult(data["elapsed"], data["accepted"], data["tls"], data["results"])

    # --- the sink -------------------------------------------------------------------------

    @property
    def sink_dir(self) -> Path:
        return self.workdir / "sink"

    def sink_down(self) -> None:
        self.sink.kill()
        self.sink.wait(timeout=10)

    def sink_up(self) -> None:
        self.sink.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._sink_listening():
                return
            time.sleep(0.1)
        raise TimeoutError("the sink did not come back")

    def _sink_listening(self) -> bool:
        rc, _ = exec_text(
            self.sink, "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 25), 1)'"
        )
        return rc == 0

    def received(self) -> list[SinkMessage]:
        """Every message the sink stored, in arrival order."""
        out = []
        for meta_path in sorted(self.sink_dir.glob("*.json")):
            meta = json.loads(meta_path.read_text())
            raw = meta_path.with_suffix(".eml").read_bytes()
            out.append(
                SinkMessage(raw, meta["arrived"], meta["peer"], meta["mail_from"], tuple(meta["rcpt_tos"]))
            )
        return sorted(out, key=lambda m: m.arrived)

    def wait_for_received(self, n: int, timeout: float = 60.0, interval: float = 0.1) -> list[SinkMessage]:
        """Poll until the sink holds at least `n` messages; returns them (TimeoutError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            count = len(list(self.sink_dir.glob("*.json")))
            if count >= n:
                return self.received()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sink holds {count} of {n} messages after {timeout:.0f}s")
            time.sleep(interval)

    def clear_sink(self) -> None:
        for f in self.sink_dir.iterdir():
            f.unlink()

    # --- lifecycle ------------------------------------------------------------------------

    def all_logs(self) -> str:
        parts = []
        for c in (self.smtp_out, self.dns, self.sink, self.app):
            if c is not None:
                with contextlib.suppress(docker.errors.APIError):
                    parts.append(f"--- {c.name} ---\n{logs(c)}")
        return "\n".join(parts)


def build_peer_image(client: docker.DockerClient, progress: Any = None) -> str:
    return build(client, ImageSpec(PEER_IMAGE, PEER_CONTEXT), progress or (lambda line: None))


def _peer(client: docker.DockerClient, name: str, network: str, ip: str, **kw: Any) -> Container:
    endpoint = client.api.create_endpoint_config(ipv4_address=ip)
    return client.containers.run(
        PEER_IMAGE,
        name=unique(name),
        detach=True,
        network=network,
        networking_config={network: endpoint},
        labels={LABEL: "1"},
        **kw,
    )


@contextlib.contextmanager
def open_testnet(client: docker.DockerClient, workdir: Path, *, keep: bool = False) -> Iterator[TestNet]:
    """Create both networks, the resolver, the sink, the app and the outsider; generate the
    run's material. Everything is removed afterwards unless `keep`."""
    workdir.mkdir(parents=True, exist_ok=True)
    material = Material.create(workdir / "material")
    (workdir / "sink").mkdir(exist_ok=True)
    (workdir / "resolv.conf").write_text(f"nameserver {DNS_IP}\noptions timeout:1 attempts:2\n")
    stack = contextlib.ExitStack()
    with contextlib.ExitStack() as cleanup:
        if not keep:
            cleanup.push(stack)
        prod = stack.enter_context(internal_network(client, unique("smtp-out-prod"), PROD_SUBNET))
        outside = stack.enter_context(internal_network(client, unique("smtp-out-outside"), OUTSIDE_SUBNET))
        prod_name, outside_name = str(prod.name), str(outside.name)
        material_mount = {str(material.root): {"bind": "/material", "mode": "ro"}}
        dns = _peer(client, "smtp-out-resolver", prod_name, DNS_IP, command=dnsmasq_command())
        sink = _peer(
            client, "smtp-out-sink", prod_name, SINK_IP, command=["python3", "/peer/sink.py"],
            volumes={str(workdir / "sink"): {"bind": "/sink", "mode": "rw"}},
        )  # fmt: skip
        app = _peer(client, "smtp-out-app", prod_name, APP_IP, volumes=material_mount)
        outsider = _peer(client, "smtp-out-outsider", outside_name, OUTSIDER_IP, volumes=material_mount)
        net = TestNet(
            client,
            workdir,
            material,
            prod_name,
            outside_name,
            dns,
            sink,
            app,
            outsider,
        )
        if not keep:
            cleanup.callback(net.remove_smtp_out)
        yield net
