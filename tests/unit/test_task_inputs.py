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


#: Every numeric option of every task, with the bounds it takes.
NUMERIC_OPTIONS = {
    ("smoke-test", "--port"): "from 1 to 65535",
    ("canary", "--port"): "from 1 to 65535",
    ("deploy-parallel", "--port"): "from 1 to 65535",
    ("cutover", "--port"): "from 1 to 65535",
    ("cutover", "--parallel-port"): "from 1 to 65535",
    ("rollback", "--port"): "from 1 to 65535",
    ("rollout-cleanup", "--keep"): "0 or more",
    ("bench", "--repeats"): "1 or more",
    ("bench", "--messages"): "1 or more",
    ("bench", "--burst"): "0 or more",
    ("dkim-key", "--bits"): "from 2048 to 4096",
}


def test_every_numeric_option_of_every_task_is_listed_and_declared_as_text() -> None:
    """invoke converts an `int` option itself and tracebacks on `abc`: every numeric option is a
    string parsed by cli.integer, and every one is in NUMERIC_OPTIONS (so the test below sees it)."""
    import inspect

    import tasks
    from invoke.tasks import Task

    found = set()
    for name, obj in vars(tasks).items():
        if not isinstance(obj, Task):
            continue
        for param in inspect.signature(obj.body).parameters.values():
            assert not isinstance(param.default, int) or isinstance(param.default, bool), (name, param)
            if isinstance(param.default, str) and param.default.isdigit():
                found.add((name.replace("_", "-"), "--" + param.name.replace("_", "-")))
    assert found == set(NUMERIC_OPTIONS)


BAD_NUMBERS = [
    (task, option, value)
    for (task, option), bounds in sorted(NUMERIC_OPTIONS.items())
    for value in ("abc", "-1", "1.5", *(("67123",) if bounds.startswith("from") else ()))
]


@pytest.mark.parametrize(("task", "option", "value"), BAD_NUMBERS)
def test_a_bad_number_is_one_line_and_exit_2(task: str, option: str, value: str, tmp_path: Path) -> None:
    """No engine is needed: the value is refused before anything else runs (and nothing is
    written: dkim-key's output folder stays absent)."""
    extra = ["--domain", "feedsubscription.com", "--out", str(tmp_path / "k")] if task == "dkim-key" else []
    r = invoke(task, option, value, *extra, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert (r.returncode, r.stdout) == (2, ""), r.stderr
    assert r.stderr.splitlines() == [
        f"ERROR: {option} {value!r}: expected a whole number {NUMERIC_OPTIONS[(task, option)]}"
    ]
    assert not (tmp_path / "k").exists()


def test_the_task_wrapper_turns_docker_errors_into_one_line() -> None:
    import docker.errors
    import requests.exceptions

    from smtp_out.cli import engine_error

    api = docker.errors.APIError("500 Server Error", explanation="conflict: unable to delete 1234\nmore")
    assert str(engine_error(api)) == "the Docker engine refused: conflict: unable to delete 1234"
    assert engine_error(api).exit_code == 1  # type: ignore[union-attr]
    gone = docker.errors.ImageNotFound("404", explanation="No such image: smtp-out:latest")
    assert str(engine_error(gone)) == "the Docker engine refused: No such image: smtp-out:latest"
    lost = engine_error(requests.exceptions.ConnectionError("Connection aborted."))
    assert lost is not None and lost.exit_code == 2 and str(lost).startswith("lost the connection")
    assert engine_error(ValueError("x")) is None
