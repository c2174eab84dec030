"""What a running relay's queue holds, from `postqueue -j`: read and parsed here, once.

`postqueue -j` prints one JSON object per queued message (queue_name, queue_id, arrival_time,
message_size, sender, recipients, ...). Its own diagnostics (`postqueue: warning: ...`) arrive on
the same stream through `docker exec` and are skipped; any other line that is not a JSON object
is an error.
"""

from __future__ import annotations

import json
import re
from typing import Any

from docker.models.containers import Container

from ...engine.containers import exec_text
from .archive import QueueError

COMMAND = "postqueue -j"
#: A diagnostic of postqueue or of a program it runs (postdrop, ...), not a message.
_DIAGNOSTIC = re.compile(r"post[a-z]+: ")


def parse(text: str) -> list[dict[str, Any]]:
    """The messages of `postqueue -j` output, one dict each, in its order. Raises ValueError on
    a line that is not a JSON object (diagnostics and blank lines are skipped)."""
    messages: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or _DIAGNOSTIC.match(line):
            continue
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            raise ValueError(f"postqueue -j line {number} is not a JSON object: {line[:80]}")
        messages.append(message)
    return messages


def messages(container: Container) -> list[dict[str, Any]]:
    """What the relay's queue holds now, one dict per message. Raises QueueError when
    `postqueue -j` fails or prints something else (the relay is not running Postfix, say)."""
    rc, out = exec_text(container, COMMAND)
    if rc != 0:
        raise QueueError(f"{container.name}: `{COMMAND}` failed: {out.strip()}")
    try:
        return parse(out)
    except ValueError as exc:
        raise QueueError(f"{container.name}: {exc}") from None


def queue_ids(container: Container) -> list[str]:
    """The queue ids of every message in the relay's queue."""
    return [str(m["queue_id"]) for m in messages(container)]
