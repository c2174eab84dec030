"""Apt version pins in the Dockerfiles: find them, ask Debian which versions it serves now, move them.

A pin is a `name=version` argument of `apt-get install` (or `apt install`) inside a RUN
instruction. `parse_pins` finds them, `check_dockerfiles` asks apt in ONE throwaway container
from the base image which versions exist and which one apt would pick (the candidate), and
`update_dockerfiles` rewrites the pins that no longer match the candidate, changing nothing
else in the file.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import json
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import docker
import docker.errors
import requests.exceptions

from . import LABEL, REPO_ROOT

DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
Status = Literal["ok", "outdated", "missing"]

# Debian package names (Policy 5.6.1), with an optional :arch qualifier; versions (Policy 5.6.12)
# with an optional epoch. Versions are only taken literally: `pkg=${VERSION}` is no pin.
_PACKAGE = r"[a-z0-9][a-z0-9+.-]+(?::[a-z0-9][a-z0-9-]*)?"
_VERSION = r"(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*"
_PIN = re.compile(f"(?P<package>{_PACKAGE})=(?P<version>{_VERSION})")
_DIRECTIVE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(\S*)\s*")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# words that may precede a command in a simple command without being the command
_PREFIXES = {"sudo", "env", "command", "exec", "nohup", "xargs"}
_RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time"}
# apt options whose value is the next word
_OPTIONS_WITH_VALUE = {
    "-o",
    "-c",
    "-t",
    "--option",
    "--config-file",
    "--target-release",
    "--default-release",
}
_REDIRECT = "<redirect>"


@dataclass(frozen=True)
class Pin:
    """One `package=version` argument of an apt install, at a 1-based line of a Dockerfile."""

    package: str
    version: str
    dockerfile: Path
    line: int


@dataclass(frozen=True)
class _Word:
    """A shell word after quote removal; `offsets[i]` is where value[i] sits in the Dockerfile text."""

    value: str
    offsets: tuple[int, ...]


@dataclass(frozen=True)
class _Found:
    package: str
    version: str
    line: int
    start: int  # offset of the version's first character in the text
    contiguous: bool  # the version is written as-is at text[start:start+len(version)]


# -- parsing ------------------------------------------------------------------------------------------


def _escape_char(lines: Sequence[str]) -> str:
    """The Dockerfile's escape character: `# escape=`` ` among the leading parser directives, else `\\`."""
    for line in lines:
        m = _DIRECTIVE.fullmatch(line.rstrip("\r\n"))
        if not m:
            break
        if m.group(1).lower() == "escape" and m.group(2) in ("\\", "`"):
            return m.group(2)
    return "\\"


def _instructions(text: str) -> Iterator[list[tuple[str, int]]]:
    """Each instruction as (character, offset) pairs, with line continuations joined and the
    comment and blank lines inside a continued instruction left out, as Docker does."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    continuation = re.compile(re.escape(_escape_char(lines)) + r"[ \t\r]*$")
    i = 0
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        chars: list[tuple[str, int]] = []
        while i < len(lines):
            body = lines[i].rstrip("\r\n")
            m = continuation.search(body)
            end = m.start() if m else len(body)
            chars.extend((body[k], starts[i] + k) for k in range(end))
            i += 1
            if not m:
                break
            while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                i += 1
        yield chars


class _Lexer:
    """Splits a shell command into words (quotes removed, offsets kept) and operators
    (`&&`, `||`, `;`, `|`, `&`, `(`, `)`, and a marker for redirections)."""

    def __init__(self, chars: Sequence[tuple[str, int]]) -> None:
        self.chars = chars
        self.tokens: list[_Word | str] = []
        self.value: list[str] = []
        self.offsets: list[int] = []
        self.in_word = False

    def char(self, i: int) -> str:
        return self.chars[i][0] if i < len(self.chars) else ""

    def add(self, i: int) -> None:
        ch, pos = self.chars[i]
        self.value.append(ch)
        self.offsets.append(pos)
        self.in_word = True

    def flush(self) -> None:
        if self.in_word:
            self.tokens.append(_Word("".join(self.value), tuple(self.offsets)))
        self.value.clear()
        self.offsets.clear()
        self.in_word = False

    def run(self) -> list[_Word | str]:
        i = 0
        while i < len(self.chars):
            ch, nxt = self.char(i), self.char(i + 1)
            if ch == "#" and not self.in_word:
                break  # a shell comment runs to the end of the (joined) instruction
            if ch in " \t\r\n":
                self.flush()
                i += 1
            elif ch in "<>" or (ch == "&" and nxt == ">"):
                i = self.redirect(i)
            elif ch in ";&|()":
                self.flush()
                op = ch + nxt if ch + nxt in ("&&", "||", ";;") else ch
                self.tokens.append(op)
                i += len(op)
            elif ch == "\\":
                if i + 1 < len(self.chars):
                    self.add(i + 1)
                i += 2
            elif ch in "'\"`" or (ch == "$" and nxt == "("):
                i = self.quoted(i)
            else:
                self.add(i)
                i += 1
        self.flush()
        return self.tokens

    def redirect(self, i: int) -> int:
        if self.in_word and "".join(self.value).isdigit():  # 2>/dev/null: the 2 is no word
            self.in_word = False
        self.flush()
        i += 1
        while self.char(i) and self.char(i) in "<>&|":
            i += 1
        self.tokens.append(_REDIRECT)
        return i

    def quoted(self, i: int) -> int:
        """Read '...' and "..." (quotes removed), `...` and $(...) (kept as they are)."""
        ch = self.char(i)
        self.in_word = True
        if ch == "$":
            depth = 0
            while i < len(self.chars):
                c = self.char(i)
                depth += (c == "(") - (c == ")")
                self.add(i)
                i += 1
                if c == ")" and depth == 0:
                    break
            return i
        if ch == "`":
            self.add(i)
        i += 1
        while i < len(self.chars) and self.char(i) != ch:
            if ch == '"' and self.char(i) == "\\" and self.char(i + 1) and self.char(i + 1) in '$`"\\':
                i += 1
            self.add(i)
            i += 1
        if ch == "`" and i < len(self.chars):
            self.add(i)
        return i + 1


def _shell_words(chars: Sequence[tuple[str, int]]) -> list[_Word | str]:
    return _Lexer(chars).run()


def _simple_commands(tokens: Sequence[_Word | str]) -> Iterator[list[_Word]]:
    """The words of each simple command, redirection targets left out."""
    words: list[_Word] = []
    redirect = False
    for token in tokens:
        if isinstance(token, _Word):
            if redirect:
                redirect = False
            else:
                words.append(token)
        elif token == _REDIRECT:
            redirect = True
        else:
            yield words
            words = []
    yield words


def _install_arguments(words: Sequence[_Word]) -> list[_Word]:
    """The package arguments when the command is `apt-get install` or `apt install`, else []."""
    i = 0
    while i < len(words) and (
        words[i].value in _RESERVED
        or words[i].value in _PREFIXES
        or _ASSIGNMENT.match(words[i].value)
        or (i > 0 and words[i - 1].value in _PREFIXES and words[i].value.startswith("-"))
    ):
        i += 1
    if i >= len(words) or words[i].value.rsplit("/", 1)[-1] not in ("apt-get", "apt"):
        return []
    i += 1
    while i < len(words) and words[i].value.startswith("-"):
        i += 2 if words[i].value in _OPTIONS_WITH_VALUE else 1
    if i >= len(words) or words[i].value != "install":
        return []
    arguments: list[_Word] = []
    i += 1
    while i < len(words):
        if words[i].value.startswith("-"):
            i += 2 if words[i].value in _OPTIONS_WITH_VALUE else 1
            continue
        arguments.append(words[i])
        i += 1
    return arguments


def _skip_run_flags(chars: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The command of a RUN instruction: the keyword and any --mount=... style flags removed."""
    i = 3
    while True:
        while i < len(chars) and chars[i][0] in " \t":
            i += 1
        if chars[i : i + 2] and "".join(c for c, _ in chars[i : i + 2]) == "--":
            while i < len(chars) and chars[i][0] not in " \t":
                i += 1
            continue
        return chars[i:]


def _find(text: str) -> list[_Found]:
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    found: list[_Found] = []
    for instruction in _instructions(text):
        chars = instruction
        while chars and chars[0][0] in " \t":
            chars = chars[1:]
        keyword = "".join(c for c, _ in chars[:4])
        if keyword[:3].upper() != "RUN" or (len(keyword) == 4 and keyword[3] not in " \t"):
            continue
        command = _skip_run_flags(chars)
        if command and command[0][0] in "[<":  # exec form and heredocs are not read
            continue
        for words in _simple_commands(_shell_words(command)):
            for word in _install_arguments(words):
                m = _PIN.fullmatch(word.value)
                if not m:
                    continue
                version_offsets = word.offsets[m.start("version") :]
                start = version_offsets[0]
                found.append(
                    _Found(
                        package=m.group("package"),
                        version=m.group("version"),
                        line=bisect.bisect_right(line_starts, word.offsets[0]),
                        start=start,
                        contiguous=version_offsets == tuple(range(start, start + len(version_offsets))),
                    )
                )
    return found


def parse_pins(text: str, dockerfile: Path) -> list[Pin]:
    """Every `name=version` argument of apt-get/apt install in the RUN instructions of `text`."""
    return [Pin(f.package, f.version, dockerfile, f.line) for f in _find(text)]


def rewrite_pins(text: str, new_versions: Mapping[str, str]) -> str:
    """`text` with the version of every pin of a package in `new_versions` replaced; quoting,
    indentation, comments and everything else stay byte-identical."""
    out = text
    for f in sorted(_find(text), key=lambda f: f.start, reverse=True):
        new = new_versions.get(f.package)
        if new is None or new == f.version:
            continue
        if not f.contiguous:
            raise ValueError(
                f"line {f.line}: cannot rewrite {f.package}={f.version}: "
                "its version is split by quotes or escapes"
            )
        out = out[: f.start] + new + out[f.start + len(f.version) :]
    return out


# -- what apt serves ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinStatus:
    """A pin and what apt in the base image knows about its package right now."""

    pin: Pin
    available: list[str]
    candidate: str | None

    @property
    def resolves(self) -> bool:
        """The pinned version can be installed: apt still serves it."""
        return self.pin.version in self.available

    @property
    def status(self) -> Status:
        """ok: pinned version is the candidate; outdated: still served, but apt would pick
        another; missing: no longer served (the image build fails)."""
        if not self.resolves:
            return "missing"
        return "ok" if self.candidate == self.pin.version else "outdated"


class AptQueryFailed(RuntimeError):
    """The container asking apt for versions could not run or did not finish."""


# Prints, for every package given as an argument, `@@ <name>`, `candidate <version>` (when apt
# has one) and `version <v>` for each version some package index serves (apt-cache madison leaves
# out the dpkg status file); only the version column is kept. `@@ end` marks a complete run.
APT_SCRIPT = r"""set -euo pipefail
export LC_ALL=C
apt-get update -qq --error-on=any -o Acquire::Retries=3 >&2
for p in "$@"; do
  printf '@@ %s\n' "$p"
  apt-cache policy "$p" | sed -n 's/^  Candidate: /candidate /p'
  apt-cache madison "$p" | cut -d'|' -f2 | sed 's/^ */version /; s/ *$//'
done
echo '@@ end'
"""


def parse_apt_output(text: str) -> dict[str, tuple[list[str], str | None]]:
    """Parse APT_SCRIPT's output: package -> (versions served, newest first, no repeats; candidate).
    A candidate of `(none)` (virtual or unknown packages) becomes None."""
    result: dict[str, tuple[list[str], str | None]] = {}
    package: str | None = None
    versions: list[str] = []
    candidate: str | None = None

    def close() -> None:
        if package is not None:
            result[package] = (versions, candidate)

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("@@ "):
            close()
            package, versions, candidate = line[3:].strip(), [], None
            if package == "end":
                package = None
        elif package is None:
            continue
        elif line.startswith("candidate "):
            value = line.removeprefix("candidate ").strip()
            candidate = None if value == "(none)" else value
        elif line.startswith("version "):
            value = line.removeprefix("version ").strip()
            if value and value not in versions:
                versions.append(value)
    close()
    if "@@ end" not in (raw.strip() for raw in text.splitlines()):
        raise AptQueryFailed("the apt query stopped before the end of its output")
    return result


def available_versions(
    client: docker.DockerClient, base_image: str, packages: list[str]
) -> dict[str, tuple[list[str], str | None]]:
    """Ask apt in one throwaway container from `base_image` (default bridge network, to reach
    Debian's mirror): package -> (versions served, candidate)."""
    names = list(dict.fromkeys(packages))
    for name in names:
        if not re.fullmatch(_PACKAGE, name):
            raise ValueError(f"not a Debian package name: {name!r}")
    if not names:
        return {}
    try:
        container = client.containers.create(
            base_image,
            ["bash", "-c", APT_SCRIPT, "pins", *names],
            name=f"smtp-out-pins-{uuid.uuid4().hex[:8]}",
            labels={LABEL: "1"},
        )
    except docker.errors.ImageNotFound:
        raise AptQueryFailed(
            f"base image {base_image} is not present: build it first (invoke build-docker-images)"
        ) from None
    try:
        container.start()
        code = container.wait(timeout=600)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        if code != 0:
            err = container.logs(stdout=False, stderr=True).decode("utf-8", "replace").strip()
            last = " / ".join(err.splitlines()[-3:]) or "no output"
            raise AptQueryFailed(f"apt in {base_image} exited with {code}: {last}")
    except docker.errors.APIError as exc:
        if isinstance(exc, docker.errors.NotFound) or exc.status_code == 409:
            raise AptQueryFailed(
                f"the apt container was removed while it ran ({exc.explanation or exc}): something removed "
                f"the containers labelled {LABEL} meanwhile (a concurrent test session or invoke clean?)"
            ) from exc
        raise AptQueryFailed(f"asking apt in {base_image} failed: {exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise AptQueryFailed(f"asking apt in {base_image} failed: {exc}") from exc
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True, v=True)
    result = parse_apt_output(out)
    if lost := [n for n in names if n not in result]:
        raise AptQueryFailed(f"apt reported nothing for {', '.join(lost)}")
    return result


def check_dockerfiles(
    client: docker.DockerClient, dockerfiles: list[Path], base_image: str = DEFAULT_BASE_IMAGE
) -> list[PinStatus]:
    """Every pin of every Dockerfile with what apt in `base_image` serves (one container run)."""
    found = [pin for path in dockerfiles for pin in parse_pins(_read(path), path)]
    apt = available_versions(client, base_image, [p.package for p in found])
    return [PinStatus(p, list(apt[p.package][0]), apt[p.package][1]) for p in found]


# -- reports and updates ------------------------------------------------------------------------------


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def render_table(statuses: Sequence[PinStatus]) -> str:
    """An aligned table per Dockerfile (package, pinned, available = the candidate, status) and a summary."""
    header = ("package", "pinned", "available", "status")
    rows = [(s.pin.package, s.pin.version, s.candidate or "-", s.status) for s in statuses]
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(3)]

    def fmt(row: tuple[str, str, str, str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]

    lines: list[str] = []
    current: Path | None = None
    for s, row in zip(statuses, rows, strict=True):
        if s.pin.dockerfile != current:
            current = s.pin.dockerfile
            lines += [*([""] if lines else []), _shown(current), fmt(header)]
        lines.append(fmt(row))
    counts = {k: sum(s.status == k for s in statuses) for k in ("ok", "outdated", "missing")}
    summary = f"{len(statuses)} pins: " + ", ".join(f"{n} {k}" for k, n in counts.items())
    return "\n".join([*lines, *([""] if lines else []), summary])


def render_json(statuses: Sequence[PinStatus], diffs: Mapping[Path, str] | None = None) -> str:
    """The statuses (and the diffs of an update, when given) as JSON."""
    doc: dict[str, object] = {
        "resolves": all(s.resolves for s in statuses),
        "pins": [
            {
                "dockerfile": _shown(s.pin.dockerfile),
                "line": s.pin.line,
                "package": s.pin.package,
                "pinned": s.pin.version,
                "candidate": s.candidate,
                "available": s.available,
                "status": s.status,
                "resolves": s.resolves,
            }
            for s in statuses
        ],
    }
    if diffs is not None:
        doc["diffs"] = {_shown(path): diff for path, diff in diffs.items()}
    return json.dumps(doc, indent=2)


def _read(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as f:
        return f.read()


def update_dockerfiles(statuses: Sequence[PinStatus]) -> dict[Path, str]:
    """Move every pin that is not ok to its candidate, in place; returns a unified diff per
    changed Dockerfile. Pins without a candidate are left as they are."""
    moves: dict[Path, dict[str, str]] = {}
    for s in statuses:
        if s.status != "ok" and s.candidate is not None:
            moves.setdefault(s.pin.dockerfile, {})[s.pin.package] = s.candidate
    diffs: dict[Path, str] = {}
    for path, new_versions in moves.items():
        old = _read(path)
        new = rewrite_pins(old, new_versions)
        if new == old:
            continue
        with path.open("w", encoding="utf-8", newline="") as f:
            f.write(new)
        name = _shown(path)
        diffs[path] = "".join(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )
    return diffs
