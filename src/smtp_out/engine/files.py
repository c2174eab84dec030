"""Host folders read and written as root by the engine, through a throwaway container that has
the folder bind-mounted (no network, removed afterwards): an operator in the docker group needs
no sudo, and nothing is skipped for want of permission."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount

from .. import LABEL
from ..errors import SmtpOutError
from .containers import logs, unique

#: Where the folder appears inside the throwaway container.
MOUNT = "/q"


class FolderUnavailable(SmtpOutError):
    """The engine could not mount, read or write the folder."""


@contextlib.contextmanager
def mounted(
    client: docker.DockerClient, image: str, folder: Path, *, read_only: bool, command: str | None = None
) -> Iterator[Container]:
    """A throwaway container of `image` with `folder` bind-mounted at /q. With `command` it runs
    it (bash -c) to the end first (its output: `logs`); otherwise it is only created, which is
    enough for `read_tar` and `write_tar`."""
    kwargs: dict[str, Any] = {
        "name": unique("smtp-out-files"),
        "labels": {LABEL: "1"},
        "mounts": [Mount(MOUNT, str(folder), type="bind", read_only=read_only)],
        "network_disabled": True,
        "entrypoint": ["bash", "-c"],
        "command": [command or "true"],
    }
    try:
        container = client.containers.create(image, **kwargs)
    except docker.errors.ImageNotFound:
        raise FolderUnavailable(
            f"image {image} is not present: build it (invoke build-docker-images)"
        ) from None
    except docker.errors.APIError as exc:
        raise FolderUnavailable(f"{folder}: the engine cannot mount it ({exc.explanation or exc})") from None
    try:
        if command is not None:
            container.start()
            code = int(container.wait(timeout=120).get("StatusCode", -1))
            if code != 0:
                raise FolderUnavailable(
                    f"{folder}: `{command[:60]}` failed (exit {code}): {logs(container)[-300:]}"
                )
        yield container
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True, v=True)


def read_tar(container: Container, path: str) -> io.RawIOBase:
    """A stream of a tar of `path` inside the container (docker cp: owners, modes, times kept)."""
    chunks, _ = container.get_archive(path)
    return _ChunkReader(chunks)


def write_tar(container: Container, path: str, tar: bytes) -> None:
    """Extract `tar` at `path` inside the container, as root, with the owners the tar names."""
    if not container.put_archive(path, tar):
        raise FolderUnavailable(f"{container.name}: the engine refused to extract into {path}")


class _ChunkReader(io.RawIOBase):
    """A file object over the byte chunks the Docker SDK streams."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n
