"""The config test: build, run a throwaway container with generated material, judge it."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from .. import IMAGE
from ..checks import Check, Report, finds_nothing, run_checks
from ..engine import images
from ..engine.containers import (
    ContainerExited,
    NotReady,
    Section,
    address,
    logs,
    removing,
    run_sections,
    unique,
)
from ..engine.networks import internal_network_anywhere
from ..errors import SmtpOutError
from ..material import Material
from .launch import SmtpOutOptions, run_smtp_out, wait_for_banner
from .report import logparse

#: Subnets the config test's throwaway network may take (the first one free).
SUBNETS = [f"172.31.{third}.0/24" for third in range(200, 255)]

COMMANDS = {
    "postfix_check": "postfix check",
    "postconf": "postconf >/dev/null",
    "opendkim": "opendkim -n -x /run/opendkim/opendkim.conf",
}


@dataclass(frozen=True)
class ConfigFacts:
    boot_error: str
    seconds_to_ready: float  # container start -> 220 greeting
    log: str
    sections: dict[str, Section]
    seconds_to_verdict: float = 0.0  # 220 greeting -> every fact gathered

    def section(self, name: str) -> Section:
        return self.sections.get(name, Section(-1, "not run: the container did not become ready"))


def bad_log_lines(log: str) -> list[str]:
    """A fresh container logs no problem at all: a warning fails the config test too."""
    return [p.line for p in logparse.problems(log)]


def _clean(section: Section) -> str:
    return "clean" if section.rc == 0 and not section.output.strip() else f"rc={section.rc} {section.output}"


def _clean_check(name: str, section: str) -> Check[ConfigFacts]:
    """A check that the command `section` exited 0 and printed nothing."""
    return Check(name, lambda f: _clean(f.section(section)), lambda v: v == "clean", "exit 0, no output")


CHECKS: tuple[Check[ConfigFacts], ...] = (
    Check(
        "container starts and greets on 587",
        lambda f: f.boot_error or "ready",
        lambda v: v == "ready",
        "a 220 greeting on 587",
    ),
    finds_nothing(
        "no warning/error/fatal/panic in logs since boot", lambda f: bad_log_lines(f.log), "no such log line"
    ),
    _clean_check("postfix check is clean", "postfix_check"),
    _clean_check("postconf without warnings", "postconf"),
    _clean_check("opendkim -n is clean", "opendkim"),
)


def gather(client: docker.DockerClient, image: str = IMAGE, timeout: float = 30.0) -> ConfigFacts:
    """Run a throwaway container on its own internal network and collect the facts; the
    container, the network and the generated files are removed whatever happens."""
    with tempfile.TemporaryDirectory(prefix="smtp-out-config-") as tmp:
        material = Material.create(Path(tmp))
        with internal_network_anywhere(client, unique("smtp-out-config"), SUBNETS) as net:
            opts = SmtpOutOptions(
                image=image, name=unique("smtp-out-config"), network=net.name, material=material
            )
            container = run_smtp_out(client, opts)
            with removing(container):
                try:
                    waited = wait_for_banner(container, address(container, net.name), timeout=timeout)
                except (ContainerExited, NotReady) as exc:
                    return ConfigFacts(str(exc), 0.0, logs(container), {})
                t = time.monotonic()
                sections = run_sections(container, COMMANDS)
                log = logs(container)
                return ConfigFacts("", waited, log, sections, time.monotonic() - t)


class NoImage(SmtpOutError):
    """The image to test is not built."""


def run(client: docker.DockerClient, image: str = IMAGE) -> tuple[Report, ConfigFacts]:
    if not images.exists(client, image):
        raise NoImage(
            f"no image {image} to test: build it first "
            "(invoke build-docker-images, or config-test without --no-build)"
        )
    started = time.monotonic()
    facts = gather(client, image)
    return run_checks(f"SMTP-OUT CONFIG TEST: {image}", CHECKS, facts, started), facts
