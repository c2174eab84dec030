from __future__ import annotations

import json

from smtp_out.checks import Check, exit_code, render_json, render_text, run_checks


def _facts(**kw: object) -> dict[str, object]:
    return dict(kw)


def _checks() -> list[Check[dict[str, object]]]:
    return [
        Check("port", lambda f: f["port"], lambda v: v == 587, "587"),
        Check("name", lambda f: f["name"], lambda v: v == "smtp-out", "smtp-out"),
        Check("boom", lambda f: f["missing"], lambda v: True, "anything"),
    ]


def test_results_judge_observed_values_and_broken_measurements_fail() -> None:
    report = run_checks("T", _checks(), {"port": 587, "name": "other"})
    assert [r.passed for r in report.results] == [True, False, False]
    assert report.results[1].observed == "other"
    assert report.results[2].observed.startswith("KeyError")
    assert exit_code(report) == 1


def test_text_report_has_pass_fail_lines_and_a_summary() -> None:
    text = render_text(run_checks("SMOKE", _checks()[:2], {"port": 587, "name": "other"}))
    lines = text.splitlines()
    assert lines[0] == "=== SMOKE ==="
    assert lines[1].startswith("PASS  port")
    assert lines[2].startswith("FAIL  name") and "observed: other;" in lines[2]
    assert lines[-1].startswith("=== 1 passed, 1 failed")


def test_json_report_is_machine_readable() -> None:
    data = json.loads(render_json(run_checks("X", _checks()[:1], _facts(port=587))))
    assert data["ok"] is True and data["passed"] == 1 and data["failed"] == 0
    assert data["checks"][0] == {"name": "port", "passed": True, "observed": "587", "expect": "587"}


def test_an_empty_report_is_not_ok() -> None:
    no_checks: list[Check[dict[str, object]]] = []
    facts: dict[str, object] = {}
    assert exit_code(run_checks("X", no_checks, facts)) == 1
