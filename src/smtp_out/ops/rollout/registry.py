"""Where the last rollout of each production container kept its state, so that `invoke rollback`
finds the journal when the container itself is gone (a compose run that died half-way):
$XDG_STATE_HOME/smtp-out/rollouts.json (default ~/.local/state), 0600 in a 0700 folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .common import write_private


def _index() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "smtp-out" / "rollouts.json"


def _read() -> dict[str, str]:
    try:
        data = json.loads(_index().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def remember(production: str, folder: Path) -> None:
    """Record that the rollout of `production` keeps its state in `folder`."""
    known = _read()
    if known.get(production) != str(folder):
        known[production] = str(folder)
        write_private(_index(), json.dumps(known, indent=1, sort_keys=True) + "\n")


def folder_of(production: str) -> Path | None:
    known = _read().get(production)
    return Path(known) if known and Path(known).is_dir() else None
