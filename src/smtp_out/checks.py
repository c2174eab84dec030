"""Checks as data: a named measurement and a verdict, one runner, one reporter per format.

A check never prints: `run_checks` turns checks into results, and `render_text` or
`render_json` turns results into output. `exit_code` is 0 when every check passed, else 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Generic, TypeVar

Facts = TypeVar("Facts")


@dataclass(frozen=True)
class Check(Generic[Facts]):
    """A named check: `measure` reads the observed value from facts gathered once,
    `passes` judges it. `expect` says in words what passes (shown on failure)."""

    name: str
    measure: Callable[[Facts], object]
    passes: Callable[[object], bool]
    expect: str


def finds_nothing(name: str, find: Callable[[Facts], Sequence[object]], expect: str) -> Check[Facts]:
    """A check that passes when `find` finds nothing, and shows what it found when it fails."""
    return Check(name, lambda f: list(find(f)) or "none", lambda v: v == "none", expect)


@dataclass(frozen=True)
class Result:
    name: str
    passed: bool
    observed: str
    expect: str


@dataclass(frozen=True)
class Report:
    title: str
    results: tuple[Result, ...]
    seconds: float

    @property
    def failed(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def ok(self) -> bool:
        return not self.failed and bool(self.results)

    @property
    def exit_code(self) -> int:
        return exit_code(self)

    def text(self) -> str:
        return render_text(self)

    def to_json(self) -> dict[str, object]:
        return report_dict(self)


def run_checks(
    title: str, checks: Sequence[Check[Facts]], facts: Facts, started: float | None = None
) -> Report:
    """Judge every check against the same facts; an exception in a measurement is a failure."""
    results = []
    for check in checks:
        try:
            observed = check.measure(facts)
            passed = bool(check.passes(observed))
        except Exception as exc:  # a broken measurement is a failed check, never a crash
            observed, passed = f"{type(exc).__name__}: {exc}", False
        results.append(Result(check.name, passed, _show(observed), check.expect))
    seconds = time.monotonic() - started if started is not None else 0.0
    return Report(title, tuple(results), seconds)


def _show(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return text if len(text) <= 300 else text[:297] + "..."


def render_text(report: Report) -> str:
    width = max((len(r.name) for r in report.results), default=0)
    lines = [f"=== {report.title} ==="]
    for r in report.results:
        line = f"{'PASS' if r.passed else 'FAIL'}  {r.name:<{width}}"
        if not r.passed:
            line += f"  (observed: {r.observed or 'nothing'}; expected: {r.expect})"
        lines.append(line.rstrip())
    n, bad = len(report.results), len(report.failed)
    verdict = "ALL PASSED" if report.ok else f"{bad} FAILED"
    lines.append(f"=== {n - bad} passed, {bad} failed: {verdict} in {report.seconds:.2f}s ===")
    return "\n".join(lines)


def report_dict(report: Report) -> dict[str, object]:
    return {
        "title": report.title,
        "ok": report.ok,
        "passed": len(report.results) - len(report.failed),
        "failed": len(report.failed),
        "seconds": round(report.seconds, 3),
        "checks": [asdict(r) for r in report.results],
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2)


def exit_code(report: Report) -> int:
    return 0 if report.ok else 1
