"""Stage configuration.sh on the host: the settings main.cf gets, in order, each with where it came
from (file and line, or the variable), against a temporary CONF_DIR. Writing main.cf and asking
postconf about it runs inside the image (tests/docker/test_entrypoint_stages.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..helpers import IMAGE_CONTEXT
from .entrypoint_shell import run_stage

SHOW = (
    'check_environment; collect_settings; for n in "${SETTING_NAMES[@]}"; do '
    'printf "%s=%s <%s>\\n" "$n" "${SETTING_VALUE[$n]}" "$(where_of "$n")"; done'
)


def conf_dir(tmp_path: Path, override: str | None = None) -> Path:
    d = tmp_path / "etc" / "postfix"
    d.mkdir(parents=True)
    for name in ("main.cf.defaults", "main.cf.override", "master.cf"):
        shutil.copy(IMAGE_CONTEXT / "etc" / "postfix" / name, d / name)
    if override is not None:
        (d / "main.cf.override").write_text(override)
    return d


def test_defaults_then_override_then_environment_then_what_the_image_enforces(tmp_path: Path) -> None:
    d = conf_dir(tmp_path, "# c\nmyhostname = a.example\nmessage_size_limit =\n  2000\n")
    r = run_stage(SHOW, {"POSTFIX_message_size_limit": "3000"}, {"CONF_DIR": str(d)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    defaults, override = d / "main.cf.defaults", d / "main.cf.override"
    first = defaults.read_text().splitlines().index("smtpd_tls_security_level = encrypt") + 1
    assert lines[0] == f"smtpd_tls_security_level=encrypt <{defaults} line {first}>"
    assert f"myhostname=a.example <{override} line 2>" in lines
    assert "message_size_limit=3000 <POSTFIX_message_size_limit>" in lines
    assert lines[-3:] == [
        "smtpd_milters=unix:/opendkim/opendkim.sock <this image's entrypoint>",
        "non_smtpd_milters=unix:/opendkim/opendkim.sock <this image's entrypoint>",
        "internal_mail_filter_classes=bounce, notify <this image's entrypoint>",
    ]
    assert f"smtpd_tls_cert_file={d}/cert/smtp.cert <this image's entrypoint>" in lines


def test_a_hyphenated_transport_parameter_from_the_environment_becomes_a_setting(tmp_path: Path) -> None:
    d = conf_dir(tmp_path)
    r = run_stage(SHOW, {"POSTFIX_ms-throttle_destination_rate_delay": "2s"}, {"CONF_DIR": str(d)})
    assert "ms-throttle_destination_rate_delay=2s <POSTFIX_ms-throttle_destination_rate_delay>" in r.stdout


def test_a_missing_override_is_said_once_and_the_rest_applies(tmp_path: Path) -> None:
    d = conf_dir(tmp_path)
    (d / "main.cf.override").unlink()
    r = run_stage(SHOW, {}, {"CONF_DIR": str(d)})
    assert r.returncode == 0
    assert (
        r.stderr.strip()
        == f"[smtp-out] No {d}/main.cf.override found; using Debian's main.cf, the image defaults and the "
        "environment only"
    )


def test_read_override_numbers_each_setting_by_its_first_line(tmp_path: Path) -> None:
    f = tmp_path / "o"
    f.write_text("a = 1\n\n# x\nb =\n  2\n  3\nc=4")
    r = run_stage(f"read_override {f} numbered")
    assert r.stdout.splitlines() == ["1 a=1", "4 b=2 3", "7 c=4"]


def test_myhostname_must_be_a_domain_name() -> None:
    r = run_stage("DOMAIN=localhost; check_domain")
    assert r.returncode == 1
    assert "myhostname 'localhost' is not a domain name (it is the DKIM signing domain)" in r.stderr
