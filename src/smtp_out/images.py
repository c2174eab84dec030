"""Build the images under docker-services/, streaming progress; provide the base image."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from . import REPO_ROOT, SERVICES_DIR

Progress = Callable[[str], None]
BASE_IMAGE_SCRIPT = REPO_ROOT / "scripts" / "build-base-image.sh"
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


def discover(services_dir: Path = SERVICES_DIR) -> list[ImageSpec]:
    """Every docker-services/<name>/Dockerfile, as an image named <name>."""
    return [ImageSpec(d.name, d) for d in sorted(services_dir.iterdir()) if (d / "Dockerfile").is_file()]


@dataclass
class BuildFailed(Exception):
    """A build failed; `step` is the Dockerfile step that was running."""

    tag: str
    step: str
    message: str
    output: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"building {self.tag} failed at {self.step or 'the start'}: {self.message}"


def ensure_base_images(client: docker.DockerClient, specs: Iterable[ImageSpec], progress: Progress) -> None:
    """Make sure every FROM image is present, building debian:bookworm-slim locally when needed."""
    for name in sorted({b for s in specs for b in s.base_images()}):
        try:
            client.images.get(name)
            continue
        except docker.errors.ImageNotFound:
            pass
        progress(f"base image {name} missing: running {BASE_IMAGE_SCRIPT.relative_to(REPO_ROOT)}")
        subprocess.run(["bash", str(BASE_IMAGE_SCRIPT)], check=True, env=_env_with(BASE_IMAGE=name))


def _env_with(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def build(client: docker.DockerClient, spec: ImageSpec, progress: Progress, *, tag: str | None = None) -> str:
    """Build one image, reporting each step through `progress`; returns the image id."""
    tag = tag or spec.tag
    step = ""
    output: list[str] = []
    image_id = ""
    stream = client.api.build(path=str(spec.context), tag=tag, rm=True, forcerm=True, decode=True)
    for chunk in stream:
        if "errorDetail" in chunk or "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error", "")
            raise BuildFailed(tag, step, str(detail).strip(), output[-30:])
        text = str(chunk.get("stream", ""))
        for line in text.splitlines():
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
