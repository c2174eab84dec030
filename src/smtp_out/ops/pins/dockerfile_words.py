"""Read apt install arguments out of a Dockerfile, keeping where each character came from.

`find_pins` returns every `package=version` argument of `apt-get install` / `apt install` in the
RUN instructions, with the offset of the version in the file, so that a pin can be rewritten in
place and everything else in the file stays byte-identical.

Why a reader of its own: dockerfile-parse, bashlex and BuildKit's parser were each tried, and
none keeps the character offsets through Dockerfile line continuations, parser directives
(`# escape=`), comment lines inside a continued instruction, and shell quoting and escapes,
which a byte-exact rewrite needs. shlex loses them too. This module is that reader and nothing
else (about 250 lines); tests/unit/test_pins.py covers its cases.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# Debian package names (Policy 5.6.1), with an optional :arch qualifier; versions (Policy 5.6.12)
# with an optional epoch. Versions are only taken literally: `pkg=${VERSION}` is no pin.
PACKAGE = r"[a-z0-9][a-z0-9+.-]+(?::[a-z0-9][a-z0-9-]*)?"
_VERSION = r"(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*"
_PIN = re.compile(f"(?P<package>{PACKAGE})=(?P<version>{_VERSION})")
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
class _Word:
    """A shell word after quote removal; `offsets[i]` is where value[i] sits in the Dockerfile text."""

    value: str
    offsets: tuple[int, ...]


@dataclass(frozen=True)
class Found:
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


def find_pins(text: str) -> list[Found]:
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    found: list[Found] = []
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
                    Found(
                        package=m.group("package"),
                        version=m.group("version"),
                        line=bisect.bisect_right(line_starts, word.offsets[0]),
                        start=start,
                        contiguous=version_offsets == tuple(range(start, start + len(version_offsets))),
                    )
                )
    return found
