"""A container's configuration as the engine reports it, and a new container made like it.

`ContainerConfig.of(container)` reads what an operator gave the container (docker inspect less
what its image supplies): environment, labels, command and healthcheck overrides, the whole
HostConfig (mounts, ports, restart policy, logging, DNS, sysctls, capabilities, ...) and each
network with its aliases and fixed addresses. `create` makes a container from it, on a chosen
image; the `with_*` methods return changed copies, so a parallel container can differ from
production only where it must (name, port, queue, aliases, labels).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import docker
from docker.models.containers import Container

from ..errors import SmtpOutError

#: Labels docker-compose puts on the containers it manages (and reads to find them).
COMPOSE_PREFIX = "com.docker.compose."
#: Settings an image supplies: carried over only when the container overrode them.
_IMAGE_DEFAULTS = ("Cmd", "Entrypoint", "Healthcheck", "User", "WorkingDir", "StopSignal")


class ConfigError(SmtpOutError):
    """A container's configuration cannot be carried over as asked."""


@dataclass(frozen=True)
class Network:
    """One network the container is on: aliases (less the engine's own short-id alias), and
    the fixed IPv4 address it asked for, if any."""

    name: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None


@dataclass(frozen=True)
class ContainerConfig:
    name: str
    image: str  # the reference the container was created with (its Config.Image)
    image_id: str
    hostname: str
    env: dict[str, str]
    labels: dict[str, str]
    overrides: dict[str, Any]  # Cmd, Entrypoint, Healthcheck, ... where they differ from the image's
    host_config: dict[str, Any]
    networks: tuple[Network, ...]
    exposed_ports: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, client: docker.DockerClient, container: Container) -> ContainerConfig:
        """What `container` was created with, less what its image supplies."""
        image_cfg = client.images.get(container.attrs["Image"]).attrs.get("Config") or {}
        return cls.from_attrs(container.attrs, image_cfg)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], image_cfg: Mapping[str, Any]) -> ContainerConfig:
        """The same from a container's inspect (`docker inspect`, or a record of it) and its
        image's Config."""
        cfg = attrs["Config"]
        image_env = set(image_cfg.get("Env") or [])
        env = dict(_split_env(e) for e in cfg.get("Env") or [] if e not in image_env)
        image_labels = image_cfg.get("Labels") or {}
        labels = {k: v for k, v in (cfg.get("Labels") or {}).items() if image_labels.get(k) != v}
        overrides = {k: cfg[k] for k in _IMAGE_DEFAULTS if cfg.get(k) and cfg.get(k) != image_cfg.get(k)}
        short_id = str(attrs.get("Id") or "")[:12]
        networks = tuple(
            Network(
                name,
                tuple(a for a in (ep.get("Aliases") or []) if a != short_id),
                (ep.get("IPAMConfig") or {}).get("IPv4Address") or None,
            )
            for name, ep in (attrs["NetworkSettings"]["Networks"] or {}).items()
        )
        hostname = cfg.get("Hostname") or ""
        return cls(
            name=attrs["Name"].lstrip("/"),
            image=str(cfg.get("Image", "")),
            image_id=str(attrs["Image"]),
            hostname="" if hostname == short_id else hostname,
            env=env,
            labels=labels,
            overrides=overrides,
            host_config=copy.deepcopy(attrs["HostConfig"]),
            networks=networks,
            exposed_ports=tuple(
                p for p in (cfg.get("ExposedPorts") or {}) if p not in (image_cfg.get("ExposedPorts") or {})
            ),
        )

    # --- changed copies --------------------------------------------------------------------

    def with_name(self, name: str, hostname: str | None = None) -> ContainerConfig:
        return replace(self, name=name, hostname=hostname if hostname is not None else self.hostname)

    def with_image(self, image: str) -> ContainerConfig:
        return replace(self, image=image)

    def with_labels(self, labels: Mapping[str, str], *, drop_prefix: str = "") -> ContainerConfig:
        kept = {k: v for k, v in self.labels.items() if not (drop_prefix and k.startswith(drop_prefix))}
        return replace(self, labels={**kept, **labels})

    def with_published_port(self, container_port: str, host_ip: str, host_port: int) -> ContainerConfig:
        """`container_port` (e.g. "587/tcp") published on host_ip:host_port only."""
        hc = copy.deepcopy(self.host_config)
        hc["PortBindings"] = {container_port: [{"HostIp": host_ip, "HostPort": str(host_port)}]}
        return replace(self, host_config=hc)

    def mount_source(self, target: str) -> str | None:
        """The host path mounted at `target`, from Binds or Mounts (None when nothing is)."""
        for bind in self.host_config.get("Binds") or []:
            parts = bind.split(":")
            if len(parts) >= 2 and parts[1] == target:
                return str(parts[0])
        for mount in self.host_config.get("Mounts") or []:
            if mount.get("Target") == target:
                return str(mount.get("Source"))
        return None

    def with_mount(self, target: str, source: str, read_only: bool = False) -> ContainerConfig:
        """`source` mounted at `target` instead of whatever was (a bind mount)."""
        hc = copy.deepcopy(self.host_config)
        hc["Binds"] = [b for b in hc.get("Binds") or [] if b.split(":")[1:2] != [target]]
        hc["Mounts"] = [m for m in hc.get("Mounts") or [] if m.get("Target") != target] or None
        hc["Binds"].append(f"{source}:{target}:{'ro' if read_only else 'rw'}")
        return replace(self, host_config=hc)

    def with_networks(self, networks: tuple[Network, ...]) -> ContainerConfig:
        return replace(self, networks=networks)

    # --- making one ------------------------------------------------------------------------

    def create(self, client: docker.DockerClient) -> Container:
        """Create (not start) a container from this configuration. The engine takes one network
        at create time: the others are connected before it starts."""
        if not self.networks:
            raise ConfigError(f"{self.name}: no network to put the container on")
        first, *others = self.networks
        hc = {k: v for k, v in self.host_config.items() if k not in ("ContainerIDFile", "Links")}
        hc["NetworkMode"] = first.name
        created = client.api.create_container(
            self.image,
            name=self.name,
            hostname=self.hostname or None,
            environment=[f"{k}={v}" for k, v in self.env.items()],
            labels=self.labels,
            ports=[tuple(p.split("/")) for p in {*self.exposed_ports, *(hc.get("PortBindings") or {})}]
            or None,
            host_config=hc,
            networking_config={"EndpointsConfig": {first.name: _endpoint(first)}},
            **_create_overrides(self.overrides),
        )
        container = client.containers.get(created["Id"])
        for net in others:
            client.api.connect_container_to_network(
                created["Id"], net.name, aliases=list(net.aliases) or None, ipv4_address=net.ipv4_address
            )
        return container


def mounted_at(container: Container, target: str) -> str | None:
    """The host path a container has mounted at `target` (None when nothing is)."""
    for mount in container.attrs.get("Mounts") or []:
        if mount.get("Destination") == target:
            return str(mount.get("Source"))
    return None


def _split_env(entry: str) -> tuple[str, str]:
    name, _, value = entry.partition("=")
    return name, value


def _endpoint(net: Network) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"Aliases": list(net.aliases)}
    if net.ipv4_address:
        endpoint["IPAMConfig"] = {"IPv4Address": net.ipv4_address}
    return endpoint


def _create_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Inspect's Config keys -> docker-py's create_container keyword arguments."""
    names = {"Cmd": "command", "Entrypoint": "entrypoint", "Healthcheck": "healthcheck", "User": "user",
             "WorkingDir": "working_dir", "StopSignal": "stop_signal"}  # fmt: skip
    return {names[k]: v for k, v in overrides.items() if k in names}
