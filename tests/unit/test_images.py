from __future__ import annotations

from pathlib import Path

from smtp_out import IMAGE
from smtp_out.engine.images import ImageSpec, discover

from ..helpers import IMAGE_CONTEXT


def test_discover_names_images_after_their_folders() -> None:
    specs = discover()
    assert ImageSpec(IMAGE, IMAGE_CONTEXT) in specs


def test_base_images_skip_named_build_stages(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM debian:bookworm-slim AS build\nRUN true\nFROM --platform=linux/amd64 build\nFROM alpine:3\n"
    )
    assert ImageSpec("x", tmp_path).base_images() == ["debian:bookworm-slim", "alpine:3"]


def test_the_smtp_out_image_builds_on_bookworm_slim() -> None:
    assert ImageSpec(IMAGE, IMAGE_CONTEXT).base_images() == ["debian:bookworm-slim"]
