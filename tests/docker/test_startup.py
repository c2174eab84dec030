"""Start and stop: a warning-free IPv4-only boot, Postfix as PID 1 stopping cleanly."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from smtp_out.engine.containers import exec_text, logs

from .conftest import Started
from .support import BAD_LOG

pytestmark = pytest.mark.docker


def test_ipv6_disabled_boot_is_warning_free_and_ipv4_only(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out()  # started with net.ipv6.conf.all.disable_ipv6=1, as production
    _, out = exec_text(
        s.container,
        "cat /proc/sys/net/ipv6/conf/all/disable_ipv6; postconf -h inet_protocols smtp_address_preference",
    )
    assert out.split() == ["1", "ipv4", "ipv4"]
    time.sleep(0.5)
    bad = [ln for ln in logs(s.container).splitlines() if any(w in ln.lower() for w in BAD_LOG)]
    assert bad == []
    assert "Cannot assign requested address" not in logs(s.container)


def test_postfix_is_pid_1_and_stops_cleanly(smtp_out: Callable[..., Started]) -> None:
    s = smtp_out()
    assert exec_text(s.container, "cat /proc/1/comm")[1].strip() == "master"
    started = time.monotonic()
    s.container.stop(timeout=10)
    assert time.monotonic() - started < 5  # SIGTERM reached Postfix: no 10 s kill timeout
    s.container.reload()
    assert s.container.attrs["State"]["ExitCode"] == 0
