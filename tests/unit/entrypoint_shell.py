"""Run the entrypoint's stages on the host: bash sources entrypoint.sh (which sources every stage
and runs nothing) with the stage's paths pointed at a temporary root."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from ..helpers import IMAGE_CONTEXT

ENTRYPOINT = IMAGE_CONTEXT / "entrypoint.sh"
STAGES = IMAGE_CONTEXT / "entrypoint.d"


def run_stage(
    snippet: str, env: Mapping[str, str] | None = None, paths: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """bash: set `paths` (CONF_DIR=..., before sourcing, as the image's defaults are set with
    `: "${VAR:=default}"`), source the entrypoint, run `snippet`. `env` is the process environment
    (added to a clean one: no POSTFIX_* from the test run leaks in)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POSTFIX_", "SMTP_OUT_"))}
    base.pop("TZ", None)
    assignments = "".join(f"{k}='{v}'; " for k, v in (paths or {}).items())
    return subprocess.run(
        ["bash", "-c", f"{assignments}source {ENTRYPOINT}; {snippet}"],
        capture_output=True,
        text=True,
        check=False,
        env={**base, **(env or {})},
    )


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.startswith("[smtp-out] ERROR:")]


def warnings(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.startswith("[smtp-out] WARNING:")]
