"""Stage submission.sh on the host: the tables written into a temporary CONF_DIR, and what each
header line gets from them. Postfix's regexp tables are POSIX extended regular expressions,
case-insensitive, first match wins: `grep -Ei` applies them the same way here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .entrypoint_shell import run_stage

#: For each header line on stdin, the action of the first rule in TABLE that matches it.
VERDICTS = r"""
mapfile -t rules < <(grep '^/' "$TABLE")
while IFS= read -r header; do
  verdict=none
  for rule in "${rules[@]}"; do
    pattern="${rule#/}"; pattern="${pattern%%/ *}"; action="${rule#*/ }"
    if grep -Eiq -- "$pattern" <<<"$header"; then verdict="${action%% *}"; break; fi
  done
  printf '%s\n' "$verdict"
done
"""


def tables(tmp_path: Path, domain: str = "feedsubscription.com") -> Path:
    d = tmp_path / "etc" / "postfix"
    d.mkdir(parents=True)
    r = run_stage(f"DOMAIN={domain}; prepare_submission_checks", paths={"CONF_DIR": str(d)})
    assert (r.returncode, r.stderr) == (0, "")
    return d


def verdicts(table: Path, headers: list[str]) -> list[str]:
    out = subprocess.run(
        ["bash", "-c", f"TABLE={table}; {VERDICTS}"], input="\n".join(headers) + "\n", capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return out.stdout.split()


HEADERS = {
    "From: newsletter@feedsubscription.com": "DUNNO",
    "From: Blog <x@news.feedsubscription.com>": "DUNNO",
    'From: "x@feedsubscription.com" <blog@gmail.com>': "REJECT",
    "From: blog@gmail.com": "REJECT",
    "FROM: ceo@bank.example": "REJECT",
    "From: x@feedsubscription.com.evil.example": "REJECT",
    "List-Unsubscribe: <https://feedsubscription.com/u/1>, <mailto:u@feedsubscription.com>": "INFO",
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click": "INFO",
    "list-unsubscribe : <mailto:u@feedsubscription.com>": "INFO",
    "Subject: List-Unsubscribe: From: ceo@bank.example": "none",
    "To: reader@example.com": "none",
}


def test_from_policy_and_one_click_unsubscribe_headers(tmp_path: Path) -> None:
    table = tables(tmp_path) / "submission_header_checks"
    assert verdicts(table, list(HEADERS)) == list(HEADERS.values())


def test_the_info_rules_come_after_the_from_rules_and_carry_no_text(tmp_path: Path) -> None:
    rules = [
        ln for ln in (tables(tmp_path) / "submission_header_checks").read_text().splitlines() if ln[:1] == "/"
    ]
    assert [r.split()[-1] for r in rules[-2:]] == ["INFO", "INFO"]
    assert all(r.startswith("/^From") for r in rules[:-2])


@pytest.mark.parametrize("domain", ["feedsubscription.com", "mail.example.org"])
def test_the_tables_follow_myhostname(tmp_path: Path, domain: str) -> None:
    d = tables(tmp_path, domain)
    escaped = domain.replace(".", "\\.")
    assert f"@([a-z0-9-]+\\.)*{escaped}>" in (d / "submission_header_checks").read_text()
    assert f"so it cannot be DKIM-signed for {domain}" in (d / "submission_milter_header_checks").read_text()
    assert (d / "submission_canary_senders").read_text() == (
        f"/^smtp-out-canary@{escaped}$/ HOLD held for the DKIM canary (invoke canary)\n"
    )
    assert verdicts(d / "submission_milter_header_checks", [
        "Authentication-Results: smtp-out; dkim=permerror (no From)", "Authentication-Results: x; dkim=pass",
    ]) == ["REJECT", "none"]  # fmt: skip
