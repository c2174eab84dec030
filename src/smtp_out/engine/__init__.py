"""The Docker engine: the client (one clear error when unreachable), images, containers, networks.

Named engine/, not docker/, so that it never reads like the Docker SDK it wraps.
"""

from __future__ import annotations

import docker
import docker.errors
import requests.exceptions

from ..errors import EXIT_USAGE, SmtpOutError


class DockerUnavailable(SmtpOutError):
    """No Docker engine answers; the message says what to do."""

    exit_code = EXIT_USAGE


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
