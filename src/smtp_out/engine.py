"""The Docker client, and one clear error when no engine answers."""

from __future__ import annotations

import docker
import docker.errors
import requests.exceptions


class DockerUnavailable(RuntimeError):
    """No Docker engine answers; the message says what to do."""


def client(timeout: int = 120) -> docker.DockerClient:
    """A Docker client configured from the environment (DOCKER_HOST etc.), checked with a ping."""
    try:
        c = docker.from_env(timeout=timeout)
        c.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DockerUnavailable(
            f"cannot reach the Docker daemon ({reason}); start it with scripts/provision-docker.sh "
            "or point DOCKER_HOST at a running engine"
        ) from exc
    return c
