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

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "Outcome",
    "UsageError",
    "integer",
    "one_line_errors",
    "port",
    "show",
    "task",
]

P = ParamSpec("P")
R = TypeVar("R")


def one_line_errors(task_body: Callable[P, R]) -> Callable[P, R]:
    """Wrap a task body: an expected failure (SmtpOutError), or an error of the Docker engine
    that no layer below turned into one, becomes its detail lines and one `ERROR: ...` line on
    stderr and SystemExit(its exit code), no traceback."""

    @functools.wraps(task_body)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return task_body(*args, **kwargs)
        except Exception as exc:
            known = exc if isinstance(exc, SmtpOutError) else engine_error(exc)
            if known is None:
                raise
            for line in known.details:
                progress(f"  | {line}")
            print(f"ERROR: {known}", file=sys.stderr, flush=True)
            raise SystemExit(known.exit_code) from None

    return wrapper


def engine_error(exc: BaseException) -> SmtpOutError | None:
    """A Docker SDK error (an API error, an image or container not found) or a broken connection
    to the engine, as one line with its exit code; None for anything else. The SDK is only
    looked at when it was imported, so a task that never touched it does not pay for it."""
    errors = sys.modules.get("docker.errors")
    requests_errors = sys.modules.get("requests.exceptions")
    if requests_errors is not None and isinstance(exc, requests_errors.ConnectionError):
        return DockerError(
            f"lost the connection to the Docker daemon ({first_line(exc)}); check that it runs "
            "(docker info) and try again",
            EXIT_USAGE,
        )
    if errors is None or not isinstance(exc, errors.DockerException):
        return None
    if isinstance(exc, errors.APIError):
        return DockerError(f"the Docker engine refused: {first_line(exc.explanation or exc)}")
    return DockerError(f"Docker: {first_line(exc)}")


class DockerError(SmtpOutError):
    """An error the Docker engine (or the connection to it) reported."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__


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


def integer(option: str, value: str | int, low: int, high: int | None = None) -> int:
    """An option's value as a whole number in low..high; anything else is one usage error
    naming the option (`ERROR: --port 'abc': ...`, exit 2). Tasks declare numeric options as
    strings and parse them here, so that invoke never converts (and tracebacks) by itself."""
    bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
    refused = UsageError(f"--{option.replace('_', '-')} {value!r}: expected a whole number {bounds}")
    try:
        number = int(str(value), 10)
    except ValueError:
        raise refused from None
    if number < low or (high is not None and number > high):
        raise refused
    return number


def port(option: str, value: str | int) -> int:
    """A TCP port, 1-65535 (never wrapped: 67123 is refused, not taken as 1587)."""
    return integer(option, value, 1, 65535)


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
