"""Apt pins: parsing, rewriting, status logic, apt output parsing, reports (no Docker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smtp_out.ops.pins.apt import AptQueryFailed, parse_apt_output
from smtp_out.ops.pins.drift import (
    Pin,
    PinStatus,
    parse_pins,
    render_json,
    render_table,
    rewrite_pins,
    update_dockerfiles,
)

from ..helpers import IMAGE_CONTEXT, PINNED_PACKAGES

DF = Path("Dockerfile")

SAMPLE = """\
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive
ENV FOO=bar LANG=C.UTF-8
ARG postfix=3.0-1

# a comment with pkg=1.0 outside any RUN
RUN apt-get update \\
 && apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold \\
    # Core mail services: postfix=9.9-9 in a comment is no pin
    'postfix=3.7.11-0+deb12u1' \\
    "opendkim=2.11.0~beta2-8+deb12u1" \\

    bind9-dnsutils=1:9.18.49-1~deb12u3 \\
    libc6:amd64=2.36-9+deb12u14 \\
    --option=Acquire::Retries=3 \\
    unpinned-pkg \\
 && rm -rf /var/lib/apt/lists/*

RUN DEBIAN_FRONTEND=noninteractive apt install -y "procps=2:4.0.2-3" net-tools=2.10-0.1+deb12u2 \\
 && echo curl=7.0-1 >/dev/null \\
 && apt-get download wget=1.21-1 \\
 && apt-get install -y 'busybox=1:1.35.0-4+deb12u1+b1' 2>/dev/null # ca-certificates=1-1
"""


def test_parse_finds_install_arguments_with_their_lines() -> None:
    assert parse_pins(SAMPLE, DF) == [
        Pin("postfix", "3.7.11-0+deb12u1", DF, 11),
        Pin("opendkim", "2.11.0~beta2-8+deb12u1", DF, 12),
        Pin("bind9-dnsutils", "1:9.18.49-1~deb12u3", DF, 14),
        Pin("libc6:amd64", "2.36-9+deb12u14", DF, 15),
        Pin("procps", "2:4.0.2-3", DF, 20),
        Pin("net-tools", "2.10-0.1+deb12u2", DF, 20),
        Pin("busybox", "1:1.35.0-4+deb12u1+b1", DF, 23),
    ]


@pytest.mark.parametrize(
    "run",
    [
        "RUN echo postfix=3.7-1",
        "RUN apt-get download postfix=3.7-1",
        "RUN apt-get install -y postfix=${POSTFIX_VERSION}",
        "RUN apt-get install -y Postfix=3.7-1",
        "RUN apt-get install -y postfix/bookworm-backports",
        "RUN apt-get install -y --target-release=bookworm-backports -o Foo::Bar=1",
        "RUN apt-get install -y x # postfix=3.7-1",
        "ENV postfix=3.7-1",
        'RUN ["apt-get", "install", "-y", "postfix=3.7-1"]',
    ],
)
def test_parse_ignores_what_is_no_install_argument(run: str) -> None:
    assert parse_pins(f"FROM debian\n{run}\n", DF) == []


def test_parse_handles_run_flags_options_with_values_and_the_escape_directive() -> None:
    text = (
        "# escape=`\n"
        "FROM debian\n"
        "RUN --mount=type=cache,target=/var/cache/apt apt-get -o Acquire::Retries=3 -t bookworm install `\n"
        "    postfix=3.7-1 && sudo -E apt-get install -y opendkim=2.11-1\n"
    )
    assert parse_pins(text, DF) == [Pin("postfix", "3.7-1", DF, 4), Pin("opendkim", "2.11-1", DF, 4)]


def test_parse_reads_shell_words() -> None:
    text = (
        "RUN set -e; if true; then apt-get install -y $(echo 'x=1-1') `echo y=2-2` \\\n"
        '    "post"fix=3.7-1 &>/dev/null 2>&1 </dev/null; fi || (apt install ab=1-1 | tee z=3-3)\n'
    )
    assert parse_pins(text, DF) == [Pin("postfix", "3.7-1", DF, 2), Pin("ab", "1-1", DF, 2)]


def test_parse_the_real_dockerfile() -> None:
    dockerfile = IMAGE_CONTEXT / "Dockerfile"
    found = parse_pins(dockerfile.read_text(), dockerfile)
    assert [p.package for p in found] == PINNED_PACKAGES
    lines = dockerfile.read_text().splitlines()
    for pin in found:
        assert pin.dockerfile == dockerfile
        assert f"{pin.package}={pin.version}" in lines[pin.line - 1]


def test_rewrite_changes_only_the_versions() -> None:
    new = rewrite_pins(
        SAMPLE,
        {
            "postfix": "3.7.12-0+deb12u1",
            "opendkim": "2.11.0~beta2-8+deb12u2",
            "bind9-dnsutils": "1:9.18.50-1~deb12u1",
            "libc6:amd64": "2.36-9+deb12u15",
            "procps": "2:4.0.2-4",
            "busybox": "1:1.35.0-4+deb12u2",
            "curl": "8.0-1",  # not a pin: stays
            "wget": "2.0-1",  # not a pin: stays
            "ca-certificates": "2-2",  # in a shell comment: stays
        },
    )
    expected = (
        SAMPLE.replace("'postfix=3.7.11-0+deb12u1'", "'postfix=3.7.12-0+deb12u1'")
        .replace('"opendkim=2.11.0~beta2-8+deb12u1"', '"opendkim=2.11.0~beta2-8+deb12u2"')
        .replace(" bind9-dnsutils=1:9.18.49-1~deb12u3 ", " bind9-dnsutils=1:9.18.50-1~deb12u1 ")
        .replace(" libc6:amd64=2.36-9+deb12u14 ", " libc6:amd64=2.36-9+deb12u15 ")
        .replace('"procps=2:4.0.2-3"', '"procps=2:4.0.2-4"')
        .replace("'busybox=1:1.35.0-4+deb12u1+b1'", "'busybox=1:1.35.0-4+deb12u2'")
    )
    assert new == expected
    assert new.count("\n") == SAMPLE.count("\n")
    assert rewrite_pins(SAMPLE, {}) == SAMPLE


def test_rewrite_keeps_crlf_line_endings() -> None:
    text = "FROM debian\r\nRUN apt-get install -y \\\r\n    'postfix=3.7-1' \\\r\n    procps=2:4-1\r\n"
    assert parse_pins(text, DF) == [Pin("postfix", "3.7-1", DF, 3), Pin("procps", "2:4-1", DF, 4)]
    assert rewrite_pins(text, {"postfix": "3.8-1", "procps": "2:4-2"}) == text.replace(
        "3.7-1", "3.8-1"
    ).replace("2:4-1", "2:4-2")


def test_rewrite_refuses_a_version_split_by_quotes() -> None:
    text = "RUN apt-get install -y postfix=3.7'-1'\n"
    assert parse_pins(text, DF) == [Pin("postfix", "3.7-1", DF, 1)]
    with pytest.raises(ValueError, match="split by quotes"):
        rewrite_pins(text, {"postfix": "3.8-1"})


def _status(version: str, available: list[str], candidate: str | None) -> PinStatus:
    return PinStatus(Pin("postfix", version, DF, 3), available, candidate)


def test_status_ok_outdated_missing() -> None:
    ok = _status("3.7.11-0+deb12u1", ["3.7.11-0+deb12u1", "3.7.10-0+deb12u1"], "3.7.11-0+deb12u1")
    outdated = _status("3.7.10-0+deb12u1", ["3.7.11-0+deb12u1", "3.7.10-0+deb12u1"], "3.7.11-0+deb12u1")
    missing = _status("3.7.9-0+deb12u1", ["3.7.11-0+deb12u1"], "3.7.11-0+deb12u1")
    gone = _status("3.7.9-0+deb12u1", [], None)
    assert [s.status for s in (ok, outdated, missing, gone)] == ["ok", "outdated", "missing", "missing"]
    assert [s.resolves for s in (ok, outdated, missing, gone)] == [True, True, False, False]


# APT_SCRIPT's output, captured from a run in debian:bookworm-slim (ca-certificates and
# bind9-dnsutils are served by two suites; net-tools twice with the same version).
APT_OUTPUT = """\
@@ postfix
candidate 3.7.11-0+deb12u1
version 3.7.11-0+deb12u1
@@ opendkim
candidate 2.11.0~beta2-8+deb12u1
version 2.11.0~beta2-8+deb12u1
@@ ca-certificates
candidate 20250419~deb12u2
version 20250419~deb12u2
version 20230311+deb12u1
version 20230311+deb12u1
@@ busybox
candidate 1:1.35.0-4+deb12u1+b1
version 1:1.35.0-4+deb12u1+b1
@@ bind9-dnsutils
candidate 1:9.18.49-1~deb12u3
version 1:9.18.49-1~deb12u3
version 1:9.18.49-1~deb12u1
@@ procps
candidate 2:4.0.2-3
version 2:4.0.2-3
@@ net-tools
candidate 2.10-0.1+deb12u2
version 2.10-0.1+deb12u2
version 2.10-0.1+deb12u2
@@ libc6
candidate 2.36-9+deb12u14
version 2.36-9+deb12u14
version 2.36-9+deb12u7
@@ mail-transport-agent
candidate (none)
@@ nosuchpkg
@@ busybox:amd64
candidate 1:1.35.0-4+deb12u1+b1
version 1:1.35.0-4+deb12u1+b1
@@ end
"""


def test_parse_apt_output() -> None:
    apt = parse_apt_output(APT_OUTPUT)
    assert apt["postfix"] == (["3.7.11-0+deb12u1"], "3.7.11-0+deb12u1")
    assert apt["ca-certificates"] == (["20250419~deb12u2", "20230311+deb12u1"], "20250419~deb12u2")
    assert apt["bind9-dnsutils"] == (["1:9.18.49-1~deb12u3", "1:9.18.49-1~deb12u1"], "1:9.18.49-1~deb12u3")
    assert apt["net-tools"] == (["2.10-0.1+deb12u2"], "2.10-0.1+deb12u2")
    assert apt["mail-transport-agent"] == ([], None)
    assert apt["nosuchpkg"] == ([], None)
    assert apt["busybox:amd64"] == (["1:1.35.0-4+deb12u1+b1"], "1:1.35.0-4+deb12u1+b1")
    assert len(apt) == 11


def test_parse_apt_output_needs_the_end_marker() -> None:
    with pytest.raises(AptQueryFailed, match="stopped"):
        parse_apt_output(APT_OUTPUT.removesuffix("@@ end\n"))


def _statuses(dockerfile: Path) -> list[PinStatus]:
    apt = parse_apt_output(APT_OUTPUT)
    return [PinStatus(p, *apt[p.package]) for p in parse_pins(dockerfile.read_text(), dockerfile)]


def test_reports(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM debian\nRUN apt-get install -y postfix=3.7.11-0+deb12u1 \\\n"
        "    'bind9-dnsutils=1:9.18.49-1~deb12u1' procps=2:0.0.0-0\n"
    )
    statuses = _statuses(dockerfile)
    table = render_table(statuses).splitlines()
    assert table[0] == str(dockerfile)
    assert table[1].split() == ["package", "pinned", "available", "status"]
    assert table[2].split() == ["postfix", "3.7.11-0+deb12u1", "3.7.11-0+deb12u1", "ok"]
    assert table[3].split() == ["bind9-dnsutils", "1:9.18.49-1~deb12u1", "1:9.18.49-1~deb12u3", "outdated"]
    assert table[4].split() == ["procps", "2:0.0.0-0", "2:4.0.2-3", "missing"]
    column = table[1].index("status")
    assert [line[column:] for line in table[1:5]] == ["status", "ok", "outdated", "missing"]
    assert table[-1] == "3 pins: 1 ok, 1 outdated, 1 missing"
    doc = json.loads(render_json(statuses))
    assert doc["resolves"] is False
    assert [(p["package"], p["status"], p["line"]) for p in doc["pins"]] == [
        ("postfix", "ok", 2),
        ("bind9-dnsutils", "outdated", 3),
        ("procps", "missing", 3),
    ]
    assert doc["pins"][2]["candidate"] == "2:4.0.2-3"
    assert "diffs" not in doc


def test_update_moves_pins_that_are_not_ok(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    original = (
        "FROM debian\n"
        "RUN apt-get install -y postfix=3.7.11-0+deb12u1 \\\n"
        "    # utilities\n"
        "    'bind9-dnsutils=1:9.18.49-1~deb12u1' \\\n"
        '    "procps=2:0.0.0-0"\n'
    )
    dockerfile.write_text(original)
    diffs = update_dockerfiles(_statuses(dockerfile))
    assert dockerfile.read_text() == original.replace("1:9.18.49-1~deb12u1", "1:9.18.49-1~deb12u3").replace(
        "2:0.0.0-0", "2:4.0.2-3"
    )
    assert list(diffs) == [dockerfile]
    assert "-    'bind9-dnsutils=1:9.18.49-1~deb12u1' \\\n" in diffs[dockerfile]
    assert "+    'bind9-dnsutils=1:9.18.49-1~deb12u3' \\\n" in diffs[dockerfile]
    assert '-    "procps=2:0.0.0-0"\n' in diffs[dockerfile]
    assert '+    "procps=2:4.0.2-3"\n' in diffs[dockerfile]
    assert update_dockerfiles(_statuses(dockerfile)) == {}  # now every pin is ok


def test_update_leaves_pins_without_a_candidate(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM debian\nRUN apt-get install -y nosuchpkg=1.0-1\n")
    statuses = _statuses(dockerfile)
    assert [s.status for s in statuses] == ["missing"]
    assert update_dockerfiles(statuses) == {}
    assert dockerfile.read_text() == "FROM debian\nRUN apt-get install -y nosuchpkg=1.0-1\n"
