"""Run several shell commands in a container in one exec round trip, and split the output."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from docker.models.containers import Container


@dataclass(frozen=True)
class Section:
    rc: int
    output: str


def script_for(commands: Mapping[str, str], marker: str) -> str:
    """A bash script that runs each command and prints its output and exit code between markers."""
    parts = []
    for name, cmd in commands.items():
        parts.append(f"echo '{marker} begin {name}'; ( {cmd} ) 2>&1; echo \"{marker} end {name} $?\"")
    return "\n".join(parts) + "\n"


def parse(text: str, marker: str) -> dict[str, Section]:
    out: dict[str, Section] = {}
    m_ = re.escape(marker)
    pattern = re.compile(
        rf"^{m_} begin (?P<name>\S+)\n(?P<body>.*?)^{m_} end (?P=name) (?P<rc>\d+)$", re.S | re.M
    )
    for m in pattern.finditer(text):
        out[m.group("name")] = Section(int(m.group("rc")), m.group("body").rstrip("\n"))
    return out


def output_text(output: object) -> str:
    """The text of an exec's output (bytes when not streamed)."""
    return output.decode("utf-8", "replace") if isinstance(output, bytes) else ""


def run_sections(container: Container, commands: Mapping[str, str]) -> dict[str, Section]:
    """Run every command in one `docker exec`; returns name -> (exit code, output)."""
    marker = f"@@{uuid.uuid4().hex[:10]}"
    result = container.exec_run(["bash", "-c", script_for(commands, marker)], demux=False)
    return parse(output_text(result.output), marker)
