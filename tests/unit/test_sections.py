from __future__ import annotations

import subprocess

from smtp_out.engine.containers import parse_sections, sections_script


def test_script_runs_each_command_and_parse_splits_output_and_codes() -> None:
    script = sections_script({"a": "echo one; echo two", "b": "echo err >&2; exit 3", "c": "true"}, "@@m")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    got = parse_sections(out, "@@m")
    assert got["a"].rc == 0 and got["a"].output == "one\ntwo"
    assert got["b"].rc == 3 and got["b"].output == "err"
    assert got["c"].rc == 0 and got["c"].output == ""
