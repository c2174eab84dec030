"""Configuration: main.cf rebuilt identically on every start, POSTFIX_* after the override, throttles."""

from __future__ import annotations

from collections.abc import Callable

import docker
import pytest

from smtp_out.engine.containers import exec_text
from smtp_out.ops.launch import wait_for_banner

from .conftest import Started

pytestmark = pytest.mark.docker


def test_restarts_leave_main_cf_as_after_the_first_start(
    client: docker.DockerClient, smtp_out: Callable[..., Started]
) -> None:
    s = smtp_out()
    first = exec_text(s.container, "cat /etc/postfix/main.cf; cat /etc/hosts; postconf -n")[1]
    for _ in range(2):
        s.container.restart(timeout=10)
        wait_for_banner(s.container, s.host)
    again = exec_text(s.container, "cat /etc/postfix/main.cf; cat /etc/hosts; postconf -n")[1]
    assert again == first
    assert "10.5.5.100 app" not in again  # the spec's /etc/hosts line changed nothing Postfix logs: gone
    assert first.count("myhostname = feedsubscription.com") == 2  # main.cf line + postconf -n


def test_postfix_environment_applies_after_the_override(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out(env={"POSTFIX_message_size_limit": "2048000", "POSTFIX_notify_classes": "resource,software"})
    _, out = exec_text(s.container, "postconf -h message_size_limit notify_classes myhostname")
    assert out.split() == ["2048000", "resource,software", "feedsubscription.com"]


def test_throttled_transports_and_their_pace(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out()
    _, out = exec_text(
        s.container,
        "for d in outlook.com hotmail.co.uk msn.com yahoo.com bigpond.com comcast.net gmail.com; do "
        "printf '%s=%s\\n' $d \"$(postmap -q $d texthash:/etc/postfix/transport)\"; done; "
        "postconf -h ms-throttle_destination_concurrency_limit ms-throttle_destination_rate_delay "
        "yahoo-throttle_destination_rate_delay comcast-throttle_destination_rate_delay",
    )
    lines = out.split()
    assert lines[:7] == [
        "outlook.com=ms-throttle:",
        "hotmail.co.uk=ms-throttle:",
        "msn.com=ms-throttle:",
        "yahoo.com=yahoo-throttle:",
        "bigpond.com=yahoo-throttle:",
        "comcast.net=comcast-throttle:",
        "gmail.com=",
    ]
    assert lines[7:] == ["1", "5s", "5s", "15s"]
