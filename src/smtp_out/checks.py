"""Checks as data: a named measurement and a verdict, one runner, one reporter per format.

A check never prints: `run_checks` turns checks into results, and `render_text` or
`render_json` turns results into output. A result's verdict is PASS, FAIL, WARN (a failed check
whose severity is a warning: reported, not a red flag) or N/A (the check does not apply to what
was checked, with the reason). `exit_code` is 0 when no check FAILed, else 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

Facts = TypeVar("Facts")


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    NA = "N/A"


@dataclass(frozen=True)
class Check(Generic[Facts]):
    """A named check: `measure` reads the observed value from facts gathered once,
    `passes` judges it. `expect` says in words what passes (shown on failure), `fix` what to do
    about a failure (the record to publish, the setting to change). `severity` is what a failure
    is: FAIL (a red flag) or WARN. `applies` returns the reason the check does not apply to these
    facts (its verdict is then N/A), or None when it does."""

    name: str
    measure: Callable[[Facts], object]
    passes: Callable[[object], bool]
    expect: str
    fix: str = ""
    severity: Verdict = Verdict.FAIL
    applies: Callable[[Facts], str | None] | None = None


def finds_nothing(name: str, find: Callable[[Facts], Sequence[object]], expect: str) -> Check[Facts]:
    """A check that passes when `find` finds nothing, and shows what it found when it fails."""
    return Check(name, lambda f: list(find(f)) or "none", lambda v: v == "none", expect)


@dataclass(frozen=True)
class Result:
    name: str
    passed: bool  # not FAILed: PASS, WARN and N/A count as passed
    observed: str
    expect: str
    verdict: Verdict = Verdict.PASS
    fix: str = ""

    @classmethod
    def of(cls, name: str, verdict: Verdict, observed: str, expect: str, fix: str = "") -> Result:
        return cls(name, verdict is not Verdict.FAIL, observed, expect, verdict, fix)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Result:
        """The inverse of to_json."""
        passed = bool(data["passed"])
        verdict = Verdict(str(data.get("verdict", "PASS" if passed else "FAIL")))
        return cls(str(data["name"]), passed, str(data["observed"]), str(data["expect"]), verdict,
                   str(data.get("fix", "")))  # fmt: skip

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "passed": self.passed,
            "verdict": self.verdict.value,
            "observed": self.observed,
            "expect": self.expect,
        }
        if self.fix:
            out["fix"] = self.fix
        return out


@dataclass(frozen=True)
class Report:
    title: str
    results: tuple[Result, ...]
    seconds: float

    @property
    def failed(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if not r.passed)

    def count(self, verdict: Verdict) -> int:
        return sum(1 for r in self.results if r.verdict is verdict)

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
        reason = check.applies(facts) if check.applies is not None else None
        if reason is not None:
            results.append(Result.of(check.name, Verdict.NA, reason, check.expect))
            continue
        try:
            observed = check.measure(facts)
            passed = bool(check.passes(observed))
        except Exception as exc:  # a broken measurement is a failed check, never a crash
            observed, passed = f"{type(exc).__name__}: {exc}", False
        verdict = Verdict.PASS if passed else check.severity
        fix = "" if passed else check.fix
        results.append(Result.of(check.name, verdict, _show(observed), check.expect, fix))
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
        line = f"{r.verdict.value:<4}  {r.name:<{width}}"
        if r.verdict is Verdict.NA:
            line += f"  (does not apply: {r.observed})"
        elif r.verdict is not Verdict.PASS:
            line += f"  (observed: {r.observed or 'nothing'}; expected: {r.expect})"
        lines.append(line.rstrip())
        if r.fix:
            lines.append(f"      fix: {r.fix}")
    bad = len(report.failed)
    counts = [f"{report.count(Verdict.PASS)} passed"]
    others = ((report.count(Verdict.WARN), "warned"), (report.count(Verdict.NA), "not applicable"))
    counts += [f"{n} {label}" for n, label in others if n]
    verdict = "ALL PASSED" if report.ok else f"{bad} FAILED"
    lines.append(f"=== {', '.join(counts)}, {bad} failed: {verdict} in {report.seconds:.2f}s ===")
    return "\n".join(lines)


def report_dict(report: Report) -> dict[str, object]:
    return {
        "title": report.title,
        "ok": report.ok,
        "passed": report.count(Verdict.PASS),
        "warned": report.count(Verdict.WARN),
        "not_applicable": report.count(Verdict.NA),
        "failed": len(report.failed),
        "seconds": round(report.seconds, 3),
        "checks": [r.to_json() for r in report.results],
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2)


def exit_code(report: Report) -> int:
    return 0 if report.ok else 1
