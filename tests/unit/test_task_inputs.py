"""Bad task inputs: one ERROR line and exit 2, nothing written, no traceback (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smtp_out.cli import parse_int_list
from smtp_out.dkim import check_domain
from smtp_out.errors import UsageError

from ..helpers import invoke


@pytest.mark.parametrize(
    "domain", ["feedsubscription.com", "news.feedsubscription.com", "a-b.example", "localhost"]
)
def test_domain_names_pass(domain: str) -> None:
    assert check_domain(domain) == domain


@pytest.mark.parametrize(
    "domain", ["", "../escaped", "a/b", "a..b", ".a", "a.", "-a.com", "a b", "x" * 64 + ".com"]
)
def test_anything_else_is_not_a_domain(domain: str) -> None:
    with pytest.raises(UsageError, match="is not a domain name"):
        check_domain(domain)


def test_int_lists() -> None:
    assert parse_int_list("concurrency", "1,4,16") == [1, 4, 16]
    for bad in ("x", "1,x", "", "0", "-1"):
        with pytest.raises(UsageError, match="--concurrency"):
            parse_int_list("concurrency", bad)


@pytest.mark.parametrize("domain", ["../escaped", "", "a/b"])
def test_dkim_key_refuses_a_bad_domain_and_writes_nothing(tmp_path: Path, domain: str) -> None:
    out = tmp_path / "keys"
    r = invoke("dkim-key", "--domain", domain, "--out", str(out))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"ERROR: --domain {domain!r} is not a domain name (letters, digits, hyphens and dots)"
    ]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bench_refuses_a_bad_concurrency_before_doing_anything() -> None:
    r = invoke("bench", "--concurrency", "x", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "ERROR: --concurrency 'x': expected whole numbers separated by commas, e.g. 1,4,16"
    ]


def test_since_takes_a_duration_back_or_a_time() -> None:
    import datetime as dt

    from smtp_out.ops.report.burnin import since_time

    now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
    assert since_time("", now) is None
    assert since_time("24h", now) == now - dt.timedelta(hours=24)
    assert since_time("90m", now) == now - dt.timedelta(minutes=90)
    assert since_time("7d", now) == now - dt.timedelta(days=7)
    assert since_time("2026-11-25T08:00:00Z", now) == dt.datetime(2026, 11, 25, 8, tzinfo=dt.UTC)
    for bad in ("yesterday", "24", "1w"):
        with pytest.raises(UsageError, match="--since"):
            since_time(bad, now)
