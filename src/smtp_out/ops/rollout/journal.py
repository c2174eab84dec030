"""The rollout journal: what a task that changes production is about to do, written before it
does it, so that whatever stops it (Ctrl-C, a dropped session, an OOM kill) leaves a record that
`invoke rollback` can undo from, and `invoke rollout-status` can show.

One file per compose project, `journal.json` beside the rollback points (0600 in a 0700
folder). Each state change is one step: its key, the progress line it printed, "begun" before
the change and "done" after, and what is needed to undo it (the settings a drain replaced, the
messages already held before a hold, the containers involved). A journal whose `finished` is
empty is an interrupted rollout.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .common import write_private

NAME = "journal.json"


@dataclass
class Step:
    key: str
    line: str
    state: str = "begun"  # begun | done
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Journal:
    folder: Path
    action: str
    production: str
    parallel: str = ""
    point: str = ""  # the rollback point's name, once recorded
    started: str = ""
    finished: str = ""  # empty while running or interrupted; else how it ended
    changed: bool = True  # False: it ended without having changed production
    steps: list[Step] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.folder / NAME

    @classmethod
    def start(cls, folder: Path, action: str, production: str, parallel: str = "") -> Journal:
        j = cls(
            folder, action, production, parallel, started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        )
        j.save()
        return j

    @classmethod
    def load(cls, folder: Path) -> Journal | None:
        path = folder / NAME
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        steps = [Step(**s) for s in data.pop("steps", [])]
        data.pop("folder", None)
        return cls(folder, steps=steps, **data)

    def save(self) -> None:
        data = asdict(self)
        data.pop("folder")
        write_private(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    # --- steps ----------------------------------------------------------------------------

    def begin(self, key: str, line: str, **data: Any) -> Step:
        """Record that the step `key` is about to change something (before it does)."""
        step = Step(key, line, "begun", dict(data))
        self.steps.append(step)
        self.save()
        return step

    def note(self, key: str, **data: Any) -> None:
        """Add what was learnt during a step (what to undo it with)."""
        self.get(key).data.update(data)  # type: ignore[union-attr]
        self.save()

    def done(self, key: str) -> None:
        step = self.get(key)
        if step is not None:
            step.state = "done"
            self.save()

    def get(self, key: str) -> Step | None:
        for step in reversed(self.steps):
            if step.key == key:
                return step
        return None

    def begun(self, key: str) -> bool:
        return self.get(key) is not None

    def finish(self, how: str, *, changed: bool = True) -> None:
        self.finished, self.changed = how, changed
        self.save()

    @property
    def interrupted(self) -> bool:
        return not self.finished

    def where(self) -> str:
        """Where the rollout stands, in one line."""
        last = self.steps[-1] if self.steps else None
        at = f"{last.line} ({last.state})" if last else "before its first change"
        if self.finished:
            return (
                f"{self.action} of {self.production} started {self.started}: {self.finished}; last step {at}"
            )
        return (
            f"{self.action} of {self.production} started {self.started} was INTERRUPTED at {at}; "
            "`invoke rollback` recovers it"
        )
