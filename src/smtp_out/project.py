"""Where the project checkout is: the folder holding docker-services/ and tasks.py.

The package works from a checkout (it builds the images under docker-services/ and writes
benchmark results under bench/), installed editable or not: the checkout is found from the
current directory upwards, or named by $SMTP_OUT_PROJECT.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError


class NotInCheckout(UsageError):
    """The current directory is not inside a smtp-out checkout."""


def root(start: Path | None = None) -> Path:
    """$SMTP_OUT_PROJECT, or the nearest folder at or above `start` (default: the current
    directory) that holds docker-services/ and tasks.py."""
    if named := os.environ.get("SMTP_OUT_PROJECT"):
        return Path(named).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "docker-services").is_dir() and (folder / "tasks.py").is_file():
            return folder
    raise NotInCheckout(
        f"{here} is not inside a smtp-out checkout (no docker-services/ and tasks.py above it); "
        "run from the checkout or set SMTP_OUT_PROJECT"
    )


def services_dir() -> Path:
    """docker-services/: one folder per image, named after it."""
    return root() / "docker-services"


def shown(path: Path) -> str:
    """`path` relative to the checkout when it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(root()))
    except (ValueError, UsageError):
        return str(path)


#: What `invoke integration-test` and `nox -s integration` both run: the end-to-end suites, with
#: pytest's short summary of failures and errors at the end (-rfE), so that a red run names its test.
INTEGRATION_PYTEST_ARGS = ("tests/integration", "tests/rollout", "-rfE")
