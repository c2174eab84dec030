from __future__ import annotations

import json

from smtp_out.checks import Check, Result, Verdict, exit_code, render_json, render_text, run_checks


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
    assert data["checks"][0] == {
        "name": "port",
        "passed": True,
        "verdict": "PASS",
        "observed": "587",
        "expect": "587",
    }


def test_an_empty_report_is_not_ok() -> None:
    no_checks: list[Check[dict[str, object]]] = []
    facts: dict[str, object] = {}
    assert exit_code(run_checks("X", no_checks, facts)) == 1


def test_warn_is_reported_but_not_a_red_flag_and_a_failure_shows_its_fix() -> None:
    checks: list[Check[dict[str, object]]] = [
        Check(
            "rua",
            lambda f: f["rua"],
            bool,
            "report addresses",
            fix="add rua=mailto:...",
            severity=Verdict.WARN,
        ),
        Check(
            "spf", lambda f: f["spf"], lambda v: v == "pass", "pass", fix="publish v=spf1 ip4:192.0.2.1 -all"
        ),
    ]
    report = run_checks("PRE", checks, _facts(rua="", spf="pass"))
    assert [r.verdict for r in report.results] == [Verdict.WARN, Verdict.PASS]
    assert report.ok and exit_code(report) == 0
    assert "WARN  rua" in render_text(report) and "fix: add rua=mailto:..." in render_text(report)
    assert "1 passed, 1 warned, 0 failed: ALL PASSED" in render_text(report)
    failed = run_checks("PRE", checks, _facts(rua="x", spf="fail"))
    assert failed.results[1].verdict is Verdict.FAIL and failed.results[1].fix.startswith("publish")
    assert exit_code(failed) == 1 and failed.results[0].fix == ""


def test_a_check_that_does_not_apply_is_na_with_its_reason_and_never_measured() -> None:
    def boom(_: dict[str, object]) -> object:
        raise AssertionError("measured")

    na: Check[dict[str, object]] = Check(
        "canary hold", boom, bool, "held", applies=lambda f: None if f["ours"] else "not this image"
    )
    report = run_checks("V", [na], _facts(ours=False))
    assert report.results[0].verdict is Verdict.NA and report.results[0].observed == "not this image"
    assert report.ok
    data = json.loads(render_json(report))
    assert data["not_applicable"] == 1 and data["checks"][0]["verdict"] == "N/A"
    assert "N/A   canary hold  (does not apply: not this image)" in render_text(report)
    assert Result.from_json(report.results[0].to_json()) == report.results[0]
