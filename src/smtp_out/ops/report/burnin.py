"""The burn-in report for running containers: each one's log since a point in time, streamed
through the one-pass summariser, and its queue from `postqueue -j`; judged by ops.report.verdict."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from ...checks import Report
from ...engine import containers
from ...engine.containers import exec_text
from ...errors import UsageError
from .. import preflight
from ..queue import listing
from . import verdict
from .logparse import lines_from_chunks
from .verdict import BurnInFacts

_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_time(since: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """--since: "" (the container's start), a duration back from now ("24h", "7d", "90m"), or an
    ISO 8601 time ("2026-11-25T08:00:00Z"); anything else is a usage error."""
    now = now or dt.datetime.now(dt.UTC)
    if not since:
        return None
    if m := _RELATIVE.fullmatch(since):
        return now - dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        parsed = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {since!r}: give a duration (24h, 7d, 90m) or a time (2026-11-25T08:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def gather(client: docker.DockerClient, name: str, since: str = "") -> BurnInFacts:
    """One container's facts: its log since `since` (default: since it started), streamed, and
    its queue now (None when it is not running, so the queue flag says "not measured")."""
    container = containers.get(client, name)
    started_at = str(container.attrs["State"].get("StartedAt", ""))
    start = since_time(since) or since_time(started_at[:26] + "Z")  # Docker's nanoseconds cut to micro
    label = since or f"start ({started_at[:19]}Z)"
    # a float keeps the sub-second part (a datetime is cut to whole seconds by the SDK)
    chunks = container.logs(
        stream=True, timestamps=True, follow=False, since=start.timestamp() if start else None
    )
    queue = None
    if container.status == "running":
        rc, out = exec_text(container, listing.COMMAND)
        queue = out if rc == 0 else None
    return verdict.build_facts(name, label, lines_from_chunks(chunks), queue, time.time())


@dataclass(frozen=True)
class BurnInOutcome:
    """The report of one container, or of two side by side; with the deliverability preflight's
    verdict per container when asked for (a figure: it does not change the exit code)."""

    items: Sequence[tuple[BurnInFacts, Report]]
    preflight: Sequence[Report] = ()

    @property
    def exit_code(self) -> int:
        return verdict.exit_code_of(r for _, r in self.items)

    def text(self) -> str:
        if len(self.items) == 1:
            text = verdict.render_text(*self.items[0])
        else:
            text = verdict.render_table(self.items)
        lines = [
            f"{facts.container}: {preflight.summary_line(r)}"
            for (facts, _), r in zip(self.items, self.preflight, strict=False)
        ]
        return "\n".join([text, *lines])

    def to_json(self) -> object:
        data = json.loads(verdict.render_json(self.items))
        if self.preflight:
            data["preflight"] = [
                {"container": facts.container, **preflight.summary(r)}
                for (facts, _), r in zip(self.items, self.preflight, strict=False)
            ]
        return data


def run(
    client: docker.DockerClient,
    names: Sequence[str],
    since: str = "",
    *,
    preflight_ip: str | None = None,
    resolver: str | None = None,
    ca: Path | None = None,
) -> BurnInOutcome:
    """Gather and judge each named container (one or two: production and the parallel one); with
    `preflight_ip` (the relay's public IPv4), run the deliverability preflight on each too."""
    if not 1 <= len(names) <= 2:
        raise UsageError("name one container, or two to compare side by side (--container a,b)")
    started = time.monotonic()
    items = [(facts, verdict.judge(facts, started)) for facts in (gather(client, n, since) for n in names)]
    checked = (
        [preflight.run(client, n, preflight_ip, resolver=resolver, ca=ca) for n in names]
        if preflight_ip
        else []
    )
    return BurnInOutcome(items, checked)
