"""Run one smtp-out container as the tools and the tests run it (its certificate and DKIM key
mounted where the image reads them, its queue, network and health settings), and wait for its
220 greeting. The Docker primitives underneath are engine.containers; this layer knows SMTP
(mail.greet) and the mount layout (material.Material).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

from .. import IMAGE, LABEL, SPOOL
from ..engine.containers import ContainerExited, exit_code_of, logs, unique
from ..engine.polling import poll
from ..mail import SUBMISSION_PORT, greet
from ..material import Material

__all__ = ["NO_IPV6", "SUBMISSION_PORT", "SmtpOutOptions", "run_smtp_out", "wait_for_banner"]

#: Production runs the container with IPv6 disabled.
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}


@dataclass
class SmtpOutOptions:
    """How to run one smtp-out container: mounts, network, environment."""

    image: str = IMAGE
    name: str = field(default_factory=lambda: unique("smtp-out-test"))
    network: str | None = None
    ipv4_address: str | None = None
    material: Material | None = None
    keys_read_only: bool = True
    spool: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    sysctls: Mapping[str, str] = field(default_factory=lambda: dict(NO_IPV6))
    extra_volumes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    health_interval_s: float | None = None
    healthcheck: bool = True  # False: the image's HEALTHCHECK is switched off
    dns: list[str] | None = None
    ports: Mapping[str, Any] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def volumes(self) -> dict[str, dict[str, str]]:
        vols: dict[str, dict[str, str]] = {}
        if self.material is not None:
            m = self.material
            vols[str(m.keys_dir)] = {
                "bind": "/etc/opendkim/keys",
                "mode": "ro" if self.keys_read_only else "rw",
            }
            vols[str(m.cert)] = {"bind": "/etc/postfix/cert/smtp.cert", "mode": "ro"}
            vols[str(m.cert_key)] = {"bind": "/etc/postfix/cert/smtp.key", "mode": "ro"}
        if self.spool is not None:
            vols[str(self.spool)] = {"bind": SPOOL, "mode": "rw"}
        vols.update({k: dict(v) for k, v in self.extra_volumes.items()})
        return vols


def run_smtp_out(client: docker.DockerClient, opts: SmtpOutOptions) -> Container:
    """Create and start a container (detached); the caller removes it (see `removing`)."""
    kwargs: dict[str, Any] = {
        "name": opts.name,
        "hostname": "smtp-out",
        "detach": True,
        "environment": dict(opts.env),
        "volumes": opts.volumes(),
        "sysctls": dict(opts.sysctls),
        "labels": {LABEL: "1", **opts.labels},
    }
    if opts.dns:
        kwargs["dns"] = opts.dns
    if opts.ports:
        kwargs["ports"] = dict(opts.ports)
    if not opts.healthcheck:
        kwargs["healthcheck"] = {"test": ["NONE"]}
    elif opts.health_interval_s:
        # the image's test is kept; its runs may watch for up to 10 s (healthcheck --watch)
        ns = int(opts.health_interval_s * 1e9)
        kwargs["healthcheck"] = {"interval": ns, "timeout": 30_000_000_000, "retries": 2, "start_period": 0}
    if opts.network:
        kwargs["network"] = opts.network
        if opts.ipv4_address:
            endpoint = client.api.create_endpoint_config(ipv4_address=opts.ipv4_address)
            kwargs["networking_config"] = {opts.network: endpoint}
    container: Container = client.containers.run(opts.image, **kwargs)
    container.reload()
    return container


def wait_for_banner(
    container: Container,
    host: str,
    port: int = SUBMISSION_PORT,
    timeout: float = 30.0,
    interval: float = 0.05,
) -> float:
    """Poll until the port greets with 220; returns the seconds waited. Fails fast when the
    container exits (ContainerExited, with its logs) and after `timeout` (NotReady)."""
    started = time.monotonic()
    polls, last = 0, "no attempt"

    def probe() -> float | None:
        nonlocal polls, last
        greeting = greet(host, port, timeout=0.5)
        if greeting.banner.startswith("220"):
            return time.monotonic() - started
        last = greeting.error or f"greeting {greeting.banner!r}"
        polls += 1
        if polls % 4 == 0:  # a status round trip every few polls is enough to fail fast
            container.reload()
            if container.status in ("exited", "dead"):
                raise ContainerExited(str(container.name), exit_code_of(container), logs(container))
        return None

    return poll(
        probe,
        timeout=timeout,
        interval=interval,
        seen=lambda: f"{container.name}: no 220 greeting on {host}:{port} within {timeout:.0f}s ({last})",
    )
