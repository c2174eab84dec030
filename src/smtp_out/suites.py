"""Run a pytest suite from a task (pytest is a test dependency, imported when needed)."""

from __future__ import annotations

import os

from . import REPO_ROOT


def run_pytest(path: str, *, keep: bool = False, k: str = "", extra: tuple[str, ...] = ()) -> int:
    """Run pytest on `path` (relative to the repository); returns pytest's exit code.
    With keep, the integration fixtures leave their network up (SMTP_OUT_KEEP=1)."""
    import pytest

    if keep:
        os.environ["SMTP_OUT_KEEP"] = "1"
    args = [str(REPO_ROOT / path), "-q", "-p", "no:cacheprovider", *extra]
    if k:
        args += ["-k", k]
    return int(pytest.main(args))
