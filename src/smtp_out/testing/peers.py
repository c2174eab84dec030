"""The peer image (tests' Dockerfile, sink and client under peer/) and what runs from it: the
resolver (dnsmasq), the sink MX (aiosmtpd) and SMTP clients submitting as the app does."""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import docker
from docker.models.containers import Container

from .. import LABEL
from ..engine.containers import unique
from ..engine.images import ImageSpec, build
from ..errors import SmtpOutError
from ..progress import Progress, quiet

PEER_IMAGE = "smtp-out-peer"
#: The sink's name in DNS, and its addresses (it has no IPv6: the AAAA record tempts the relay).
SINK_HOST, SINK_IPV6 = "mx.sink.test", "fd00:5::25"


class SubmitFailed(SmtpOutError):
    """The test client itself failed (not a refusal by the relay: those are in its results)."""


@dataclass(frozen=True)
class Zone:
    """What the test resolver answers: A/AAAA (and PTR) per host, MX per mail domain, TXT and PTR
    records. Names under a `local` domain that the zone lacks get NXDOMAIN (a missing record);
    anything else is refused at once (dnsmasq with no upstream: a DNS error)."""

    hosts: Mapping[str, tuple[str, str | None]]  # name -> (IPv4, IPv6 or None); dnsmasq adds the PTR
    mx: Mapping[str, str]  # mail domain -> MX host name
    txt: Mapping[str, str | Sequence[str]] = field(default_factory=dict)  # name -> value(s)
    ptr: Mapping[str, str] = field(default_factory=dict)  # IPv4 -> name (takes over a host's PTR)
    local: Sequence[str] = ()  # domains answered from this zone only: NXDOMAIN for the rest
    addresses: Mapping[str, str] = field(default_factory=dict)  # name (and its sub-domains) -> IPv4, no PTR

    def dnsmasq_command(self, listen: str) -> list[str]:
        cmd = [
            "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--log-queries",
            "--log-facility=-", f"--listen-address={listen}", "--bind-interfaces",
        ]  # fmt: skip
        cmd += [f"--local=/{domain}/" for domain in self.local]
        for name, (ipv4, ipv6) in self.hosts.items():
            cmd.append(f"--host-record={name},{ipv4}" + (f",{ipv6}" if ipv6 else ""))
        cmd += [f"--address=/{name}/{ipv4}" for name, ipv4 in self.addresses.items()]
        for domain, host in self.mx.items():
            cmd.append(f"--mx-host={domain},{host},10")
        for name, value in self.txt.items():
            # one string, unquoted: dnsmasq (no shell in between) would keep quotes, split at
            # commas (a DKIM record has none) and splits long values into 255-byte strings itself
            for one in (value,) if isinstance(value, str) else value:
                cmd.append(f"--txt-record={name},{one}")
        for ip, name in self.ptr.items():
            cmd.append(f"--ptr-record={'.'.join(reversed(ip.split('.')))}.in-addr.arpa,{name}")
        return cmd


@dataclass
class SubmitResult:
    elapsed: float
    accepted: int
    tls: list[str]
    results: list[dict[str, Any]]

    @property
    def codes(self) -> list[int]:
        return [int(r["code"]) for r in self.results]


def build_peer_image(client: docker.DockerClient, progress: Progress = quiet) -> str:
    """Build the peer image from this package's peer/ folder (its Dockerfile, sink and client)."""
    with importlib.resources.as_file(importlib.resources.files(__package__) / "peer") as context:
        return build(client, ImageSpec(PEER_IMAGE, Path(context)), progress)


def start_peer(client: docker.DockerClient, name: str, network: str, ip: str, **kw: Any) -> Container:
    """A container of the peer image at `ip` on `network` (keyword arguments go to the SDK)."""
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


def submit_from(
    client: Container,
    host: str,
    to: Sequence[str] | str,
    *,
    count: int = 1,
    concurrency: int = 1,
    extra: Sequence[str] = (),
) -> SubmitResult:
    """Run the peer's SMTP client in `client`: submit `count` messages to `host`:587 over STARTTLS
    verified against the test CA, cycling through the recipients `to`."""
    rcpts = [to] if isinstance(to, str) else list(to)
    argv = ["python3", "/peer/submit.py", "--host", host, "--count", str(count)]
    argv += ["--concurrency", str(concurrency), *extra]
    for r in rcpts:
        argv += ["--to", r]
    result = client.exec_run(argv, demux=True)
    out, err = cast(tuple[bytes | None, bytes | None], result.output)
    if result.exit_code != 0:
        raise SubmitFailed(f"submit.py failed ({result.exit_code}): {(err or b'').decode()[-2000:]}")
    data = json.loads((out or b"{}").decode())
    return SubmitResult(data["elapsed"], data["accepted"], data["tls"], data["results"])
