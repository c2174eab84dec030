"""What the Invoke tasks share: one wrapper for the one-line-error contract, and one way to
print an outcome (text or JSON) and leave with its exit code.

Exit codes: 0 success, 1 a failed check or refused operation, 2 bad usage or no Docker engine.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from invoke.tasks import Task
from invoke.tasks import task as invoke_task

from .errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, SmtpOutError, UsageError

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "Outcome", "UsageError", "one_line_errors", "show", "task"]

P = ParamSpec("P")
R = TypeVar("R")


def one_line_errors(task_body: Callable[P, R]) -> Callable[P, R]:
    """Wrap a task body: an expected failure (SmtpOutError) becomes its detail lines and one
    `ERROR: ...` line on stderr and SystemExit(its exit code), no traceback."""

    @functools.wraps(task_body)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return task_body(*args, **kwargs)
        except SmtpOutError as exc:
            for line in exc.details:
                progress(f"  | {line}")
            print(f"ERROR: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(exc.exit_code) from None

    return wrapper


def task(**options: Any) -> Callable[[Callable[..., Any]], Task[Any]]:
    """invoke's @task (its docstring is --help, `help=` documents the options) around a body
    that keeps the one-line-error contract."""

    def decorate(body: Callable[..., Any]) -> Task[Any]:
        made: Task[Any] = invoke_task(**options)(one_line_errors(body))
        return made

    return decorate


class Outcome(Protocol):
    """What a task prints: a text rendering, a JSON-able dict, and the exit code it implies."""

    def text(self) -> str: ...

    def to_json(self) -> object: ...

    @property
    def exit_code(self) -> int: ...


def show(outcome: Outcome, as_json: bool) -> None:
    """Print the outcome (text or JSON) and exit with its code."""
    print(json.dumps(outcome.to_json(), indent=2) if as_json else outcome.text(), flush=True)
    raise SystemExit(outcome.exit_code)


def progress(line: str) -> None:
    """A progress line for people, on stderr (stdout stays for the result)."""
    print(line, file=sys.stderr, flush=True)


def parse_int_list(option: str, value: str) -> list[int]:
    """'1,4,16' -> [1, 4, 16]; anything else is a usage error naming the option."""
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise UsageError(
            f"--{option} {value!r}: expected whole numbers separated by commas, e.g. 1,4,16"
        ) from None
    if not numbers or any(n < 1 for n in numbers):
        raise UsageError(f"--{option} {value!r}: expected positive whole numbers, e.g. 1,4,16")
    return numbers
