"""Build the images under docker-services/, streaming progress; provide the base image."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from .. import IMAGE, project
from ..errors import SmtpOutError
from ..progress import Progress, quiet

_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)
_STEP = re.compile(r"^Step \d+/\d+ : ")


@dataclass(frozen=True)
class ImageSpec:
    """An image to build: its tag and the folder holding its Dockerfile."""

    tag: str
    context: Path

    @property
    def dockerfile(self) -> Path:
        return self.context / "Dockerfile"

    def base_images(self) -> list[str]:
        """The images named by FROM lines (build stages named with AS are left out)."""
        text = self.dockerfile.read_text()
        stages = {m.lower() for m in re.findall(r"^\s*FROM\s+\S+\s+AS\s+(\S+)", text, re.I | re.M)}
        return [name for name in _FROM.findall(text) if name.lower() not in stages]


def discover(services_dir: Path | None = None) -> list[ImageSpec]:
    """Every docker-services/<name>/Dockerfile, as an image named <name>."""
    folder = services_dir or project.services_dir()
    return [ImageSpec(d.name, d) for d in sorted(folder.iterdir()) if (d / "Dockerfile").is_file()]


def smtp_out_spec() -> ImageSpec:
    """The relay image: docker-services/smtp-out, tagged smtp-out."""
    return ImageSpec(IMAGE, project.services_dir() / IMAGE)


class BuildFailed(SmtpOutError):
    """A build failed; names the Dockerfile step that was running, and keeps the last output."""

    def __init__(self, tag: str, step: str, message: str, output: list[str]) -> None:
        super().__init__(f"building {tag} failed at {step or 'the start'}: {message}")
        self.tag, self.step, self.message, self.output = tag, step, message, output

    @property
    def details(self) -> list[str]:
        return self.output[-15:]


class BaseImageMissing(SmtpOutError):
    """The base image could not be provided."""


def ensure_base_images(client: docker.DockerClient, specs: Iterable[ImageSpec], progress: Progress) -> None:
    """Make sure every FROM image is present, building debian:bookworm-slim locally when needed."""
    script = project.root() / "scripts" / "build-base-image.sh"
    for name in sorted({b for s in specs for b in s.base_images()}):
        try:
            client.images.get(name)
            continue
        except docker.errors.ImageNotFound:
            pass
        progress(f"base image {name} missing: running {project.shown(script)}")
        done = subprocess.run(["bash", str(script)], check=False, env={**os.environ, "BASE_IMAGE": name})
        if done.returncode != 0:
            raise BaseImageMissing(
                f"{project.shown(script)} could not provide {name} (exit {done.returncode})"
            )


def build(
    client: docker.DockerClient,
    spec: ImageSpec,
    progress: Progress,
    *,
    tag: str | None = None,
    nocache: bool = False,
    buildargs: dict[str, str] | None = None,
) -> str:
    """Build one image, reporting each step through `progress`; returns the image id."""
    tag = tag or spec.tag
    step = ""
    output: list[str] = []
    image_id = ""
    stream = client.api.build(
        path=str(spec.context),
        tag=tag,
        rm=True,
        forcerm=True,
        decode=True,
        nocache=nocache,
        buildargs=buildargs,
    )
    for chunk in stream:
        if "errorDetail" in chunk or "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error", "")
            raise BuildFailed(tag, step, str(detail).strip(), output[-30:])
        for line in str(chunk.get("stream", "")).splitlines():
            if not line.strip():
                continue
            output.append(line)
            if _STEP.match(line):
                step = line
                progress(f"{tag}: {line}")
            elif m := re.match(r"^Successfully built ([0-9a-f]+)", line):
                image_id = m.group(1)
        if aux := chunk.get("aux"):
            image_id = str(aux.get("ID", image_id))
    if not image_id:
        raise BuildFailed(tag, step, "the engine reported no image id", output[-30:])
    progress(f"{tag}: built {image_id.removeprefix('sha256:')[:12]}")
    return image_id


def build_all(
    client: docker.DockerClient, progress: Progress, specs: list[ImageSpec] | None = None
) -> dict[str, str]:
    """Build every image under docker-services/ (base images first); returns tag -> image id."""
    specs = discover() if specs is None else specs
    ensure_base_images(client, specs, progress)
    return {spec.tag: build(client, spec, progress) for spec in specs}


def left_behind(client: docker.DockerClient, built: dict[str, str]) -> list[str]:
    """Warnings for running containers created from a tag that a build just moved: compose would
    recreate them on the new image at the next `docker-compose up -d`."""
    warnings = []
    for container in client.containers.list():
        ref = str(container.attrs["Config"]["Image"])
        tag = ref.split(":", 1)[0] if ref.endswith(":latest") else ref
        if tag in built and container.attrs["Image"] != built[tag]:
            running = str(container.attrs["Image"]).removeprefix("sha256:")[:12]
            warnings.append(
                f"WARNING: {container.name} runs {running}, and the tag {ref} now names the new build: a "
                f"docker-compose up -d would recreate it on that. invoke deploy-parallel tests the new build "
                f"beside it and puts {ref} back on the image {container.name} runs"
            )
    return warnings


def build_smtp_out(client: docker.DockerClient, progress: Progress = quiet) -> str:
    """Build the relay image only (base image first); returns its id."""
    return build_all(client, progress, [smtp_out_spec()])[IMAGE]


def exists(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True
