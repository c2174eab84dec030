"""Ask apt which versions of some packages Debian serves now, in ONE throwaway container of
the base image (on the default bridge, to reach the mirror named by the image's apt sources)."""

from __future__ import annotations

import contextlib
import re
import uuid

import docker
import docker.errors
import requests.exceptions

from ... import LABEL
from ...errors import SmtpOutError
from .dockerfile_words import PACKAGE


class AptQueryFailed(SmtpOutError):
    """The container asking apt for versions could not run or did not finish."""


# Prints, for every package given as an argument, `@@ <name>`, `candidate <version>` (when apt
# has one) and `version <v>` for each version some package index serves (apt-cache madison leaves
# out the dpkg status file); only the version column is kept. `@@ end` marks a complete run.
APT_SCRIPT = r"""set -euo pipefail
export LC_ALL=C
apt-get update -qq --error-on=any -o Acquire::Retries=3 >&2
for p in "$@"; do
  printf '@@ %s\n' "$p"
  apt-cache policy "$p" | sed -n 's/^  Candidate: /candidate /p'
  apt-cache madison "$p" | cut -d'|' -f2 | sed 's/^ */version /; s/ *$//'
done
echo '@@ end'
"""


def parse_apt_output(text: str) -> dict[str, tuple[list[str], str | None]]:
    """Parse APT_SCRIPT's output: package -> (versions served, newest first, no repeats; candidate).
    A candidate of `(none)` (virtual or unknown packages) becomes None."""
    result: dict[str, tuple[list[str], str | None]] = {}
    package: str | None = None
    versions: list[str] = []
    candidate: str | None = None

    def close() -> None:
        if package is not None:
            result[package] = (versions, candidate)

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("@@ "):
            close()
            package, versions, candidate = line[3:].strip(), [], None
            if package == "end":
                package = None
        elif package is None:
            continue
        elif line.startswith("candidate "):
            value = line.removeprefix("candidate ").strip()
            candidate = None if value == "(none)" else value
        elif line.startswith("version "):
            value = line.removeprefix("version ").strip()
            if value and value not in versions:
                versions.append(value)
    close()
    if "@@ end" not in (raw.strip() for raw in text.splitlines()):
        raise AptQueryFailed("the apt query stopped before the end of its output")
    return result


def available_versions(
    client: docker.DockerClient, base_image: str, packages: list[str]
) -> dict[str, tuple[list[str], str | None]]:
    """Ask apt in one throwaway container from `base_image` (default bridge network, to reach
    Debian's mirror): package -> (versions served, candidate)."""
    names = list(dict.fromkeys(packages))
    for name in names:
        if not re.fullmatch(PACKAGE, name):
            raise ValueError(f"not a Debian package name: {name!r}")
    if not names:
        return {}
    try:
        container = client.containers.create(
            base_image,
            ["bash", "-c", APT_SCRIPT, "pins", *names],
            name=f"smtp-out-pins-{uuid.uuid4().hex[:8]}",
            labels={LABEL: "1"},
        )
    except docker.errors.ImageNotFound:
        raise AptQueryFailed(
            f"base image {base_image} is not present: build it first (invoke build-docker-images)"
        ) from None
    try:
        container.start()
        code = container.wait(timeout=600)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        if code != 0:
            err = container.logs(stdout=False, stderr=True).decode("utf-8", "replace").strip()
            last = " / ".join(err.splitlines()[-3:]) or "no output"
            raise AptQueryFailed(f"apt in {base_image} exited with {code}: {last}")
    except docker.errors.APIError as exc:
        if isinstance(exc, docker.errors.NotFound) or exc.status_code == 409:
            raise AptQueryFailed(
                f"the apt container was removed while it ran ({exc.explanation or exc}): something removed "
                f"the containers labelled {LABEL} meanwhile "
                "(a concurrent test session or invoke remove-test-leftovers?)"
            ) from exc
        raise AptQueryFailed(f"asking apt in {base_image} failed: {exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise AptQueryFailed(f"asking apt in {base_image} failed: {exc}") from exc
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True, v=True)
    result = parse_apt_output(out)
    if lost := [n for n in names if n not in result]:
        raise AptQueryFailed(f"apt reported nothing for {', '.join(lost)}")
    return result
