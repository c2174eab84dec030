"""What the Invoke tasks share: turning library errors into one line and an exit code."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from .checks import Report, exit_code, render_json, render_text
from .engine import DockerUnavailable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class TaskError(Exception):
    """An expected failure with a one-line message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn known failures into `ERROR: ...` on stderr and SystemExit(code), no traceback."""
    try:
        yield
    except DockerUnavailable as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except TaskError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        raise SystemExit(exc.code) from None


def emit(report: Report, as_json: bool) -> None:
    """Print the report (text or JSON) and exit with its code."""
    print(render_json(report) if as_json else render_text(report), flush=True)
    raise SystemExit(exit_code(report))


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
