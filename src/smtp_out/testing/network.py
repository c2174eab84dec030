"""A hermetic copy of the production network, for the integration tests and the benchmarks.

Two --internal Docker networks; nothing can leave them:

    prod     10.5.5.0/24   smtp-out .10, the app .100, resolver (dnsmasq) .53, sink MX .25
    outside  100.64.0.0/24 smtp-out .10, an outsider .100 (not in mynetworks)

The resolver answers MX, A and AAAA for every test domain (the throttled ones included) and
points them at the sink, which stores each message with its arrival time in a host folder.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from .. import IMAGE
from ..engine.containers import exec_text, logs, unique, wait_for_log
from ..engine.networks import internal_network
from ..engine.polling import poll
from ..material import Material
from ..ops.launch import SmtpOutOptions, run_smtp_out, wait_for_banner
from ..ops.queue import listing
from .peers import (
    PEER_IMAGE,
    SINK_HOST,
    SINK_IPV6,
    SubmitResult,
    Zone,
    build_peer_image,
    start_peer,
    submit_from,
)
from .sink import Sink, SinkMessage

__all__ = [
    "PEER_IMAGE",
    "SINK_HOST",
    "SINK_IPV6",
    "SubmitResult",
    "TestNet",
    "build_peer_image",
    "open_testnet",
]


PROD_SUBNET, OUTSIDE_SUBNET = "10.5.5.0/24", "100.64.0.0/24"
SMTP_OUT_IP, APP_IP, DNS_IP, SINK_IP = "10.5.5.10", "10.5.5.100", "10.5.5.53", "10.5.5.25"
SMTP_OUT_OUTSIDE_IP, OUTSIDER_IP = "100.64.0.10", "100.64.0.100"

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

#: The resolver's records: every mail domain (and the sink) resolves to the sink, over IPv4 and
#: IPv6, so that a relay preferring IPv6 would be caught; the app has a PTR record.
ZONE = Zone(
    hosts={name: (SINK_IP, SINK_IPV6) for name in (SINK_HOST, *MAIL_DOMAINS)},
    mx=dict.fromkeys(MAIL_DOMAINS, SINK_HOST),
    ptr={APP_IP: "app"},
)

#: Retry deferred mail within seconds, not Postfix's default minutes (test knobs only).
FAST_RETRY = {
    "POSTFIX_queue_run_delay": "2s",
    "POSTFIX_minimal_backoff_time": "2s",
    "POSTFIX_maximal_backoff_time": "4s",
}


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
        *,
        fast_retry: bool = True,
    ) -> Container:
        """(Re)place the smtp-out container: on prod at .10 and outside at .10, resolving through
        the test resolver, with the run's material and `spool` (default workdir/spool).
        `fast_retry=False` and `health_interval_s=None` keep the image's own settings."""
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
            env={**(FAST_RETRY if fast_retry else {}), **(env or {})},
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
        return listing.queue_ids(self.relay)

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
        return submit_from(client, host, to, count=count, concurrency=concurrency, extra=extra)

    # --- the sink -------------------------------------------------------------------------

    @property
    def sink_dir(self) -> Path:
        return self.workdir / "sink"

    @property
    def stored(self) -> Sink:
        return Sink(self.sink_dir)

    def sink_down(self) -> None:
        self.sink.kill()
        self.sink.wait(timeout=10)

    def sink_up(self) -> None:
        self.sink.start()
        poll(
            lambda: True if self._sink_listening() else None,
            timeout=15,
            interval=0.1,
            seen=lambda: "the sink did not come back",
        )

    def _sink_listening(self) -> bool:
        rc, _ = exec_text(
            self.sink, "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 25), 1)'"
        )
        return rc == 0

    def received(self) -> list[SinkMessage]:
        """Every message the sink stored, in arrival order."""
        return self.stored.received()

    def wait_for_received(self, n: int, timeout: float = 60.0, interval: float = 0.1) -> list[SinkMessage]:
        """Poll until the sink holds at least `n` messages; returns them (NotReady after `timeout`)."""
        return self.stored.wait_for_received(n, timeout, interval)

    def clear_sink(self) -> None:
        self.stored.clear()

    # --- lifecycle ------------------------------------------------------------------------

    def all_logs(self) -> str:
        parts = []
        for c in (self.smtp_out, self.dns, self.sink, self.app):
            if c is not None:
                with contextlib.suppress(docker.errors.APIError):
                    parts.append(f"--- {c.name} ---\n{logs(c)}")
        return "\n".join(parts)


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
        dns = start_peer(client, "smtp-out-resolver", prod_name, DNS_IP, command=ZONE.dnsmasq_command(DNS_IP))
        sink = start_peer(
            client, "smtp-out-sink", prod_name, SINK_IP, command=["python3", "/peer/sink.py"],
            volumes={str(workdir / "sink"): {"bind": "/sink", "mode": "rw"}},
        )  # fmt: skip
        app = start_peer(client, "smtp-out-app", prod_name, APP_IP, volumes=material_mount)
        outsider = start_peer(client, "smtp-out-outsider", outside_name, OUTSIDER_IP, volumes=material_mount)
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
