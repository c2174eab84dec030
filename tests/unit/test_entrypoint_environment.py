"""Stage environment.sh on the host: every POSTFIX_* name is read from the process environment,
hyphens included; bad names and values are refused naming the variable."""

from __future__ import annotations

from pathlib import Path

from .entrypoint_shell import errors, run_stage

SHOW = (
    'check_environment; for n in "${POSTFIX_ENV_NAMES[@]}"; do '
    'printf "%s=%s\\n" "$n" "${POSTFIX_ENV[$n]}"; done'
)


def test_names_bash_cannot_hold_are_read_sorted_with_their_values() -> None:
    env = {
        "POSTFIX_ms-throttle_destination_rate_delay": "2s",
        "POSTFIX_message_size_limit": "1000",
        "POSTFIX_yahoo-throttle_destination_concurrency_limit": "2",
        "NOT_POSTFIX_x": "1",
    }
    r = run_stage(SHOW, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "POSTFIX_message_size_limit=1000",
        "POSTFIX_ms-throttle_destination_rate_delay=2s",
        "POSTFIX_yahoo-throttle_destination_concurrency_limit=2",
    ]


def test_a_value_with_spaces_and_an_equals_sign_is_kept_whole() -> None:
    r = run_stage(SHOW, {"POSTFIX_smtpd_banner": "$myhostname ESMTP a=b  c"})
    assert r.stdout.splitlines() == ["POSTFIX_smtpd_banner=$myhostname ESMTP a=b  c"]


def test_a_name_that_cannot_be_a_parameter_is_refused_naming_the_variable() -> None:
    r = run_stage("check_environment", {"POSTFIX_a.b": "1"})
    assert r.returncode == 1
    assert errors(r) == [
        "[smtp-out] ERROR: environment variable POSTFIX_a.b: 'a.b' is not a Postfix parameter name"
    ]


def test_a_control_character_in_a_hyphenated_variable_is_refused() -> None:
    r = run_stage(
        "check_environment", {"POSTFIX_ms-throttle_destination_rate_delay": "2s\rmynetworks = 0.0.0.0/0"}
    )
    assert r.returncode == 1
    assert errors(r)[0].startswith(
        "[smtp-out] ERROR: POSTFIX_ms-throttle_destination_rate_delay: the value contains a line break"
    )


def test_milter_wait_seconds_is_validated_and_read() -> None:
    ok = run_stage('check_environment; echo "$MILTER_WAIT_SECONDS"', {"SMTP_OUT_MILTER_WAIT_SECONDS": "007"})
    assert ok.stdout.strip() == "7"
    bad = run_stage("check_environment", {"SMTP_OUT_MILTER_WAIT_SECONDS": "0"})
    assert bad.returncode == 1 and "SMTP_OUT_MILTER_WAIT_SECONDS=0: not a whole number" in bad.stderr


def test_zone_names_are_read_under_zoneinfo_dir(tmp_path: Path) -> None:
    root = tmp_path
    (root / "Mars").mkdir()
    (root / "Mars" / "Olympus").write_bytes(b"TZif2....")
    (root / "Fake").write_text("not a zone")
    r = run_stage(
        "for z in Mars/Olympus Fake UTC; do is_zone_name $z && echo yes || echo no; done",
        paths={"ZONEINFO_DIR": str(root)},
    )
    assert r.stdout.split() == ["yes", "no", "no"]
