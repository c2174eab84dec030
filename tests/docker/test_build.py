"""Building images: a failed build names its failing step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker


def test_a_failed_build_names_the_failing_step_and_exits_non_zero(tmp_path: Path) -> None:
    ctx = tmp_path / "docker-services" / "broken"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM debian:bookworm-slim\nRUN true\nRUN echo about to fail && false\n")
    code = (
        "import sys; from pathlib import Path; from smtp_out import cli, engine\n"
        "from smtp_out.engine import images\n"
        f"spec = images.ImageSpec('smtp-out-broken-test', Path({str(ctx)!r}))\n"
        "try:\n    images.build_all(engine.client(), cli.progress, [spec])\n"
        "except images.BuildFailed as exc:\n    print(exc, file=sys.stderr); sys.exit(1)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 1
    assert "smtp-out-broken-test: Step 3/3 : RUN echo about to fail && false" in r.stderr  # progress
    assert "failed at Step 3/3 : RUN echo about to fail && false" in r.stderr
    assert "returned a non-zero code: 1" in r.stderr
