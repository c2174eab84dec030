"""The healthcheck, and what happens when OpenDKIM dies: tempfail, never unsigned."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtp_out.engine.containers import exec_text, wait_for_health
from smtp_out.material import Material

from .conftest import Started
from .support import HOLD, refusal_code

pytestmark = pytest.mark.docker


def test_healthy_then_unhealthy_and_tempfail_when_opendkim_dies(
    smtp_out: Callable[..., Started], material: Material
) -> None:
    s = smtp_out(env=HOLD, health_interval_s=1)
    wait_for_health(s.container, "healthy", timeout=20)
    exec_text(s.container, "pkill -x opendkim; sleep 0.3")
    # milter_default_action=tempfail: the app is told to try later (4xx), nothing leaves unsigned
    assert 400 <= refusal_code(s.host, material) < 500
    wait_for_health(s.container, "unhealthy", timeout=20)
    rc, out = exec_text(s.container, "/usr/local/bin/healthcheck")
    assert rc == 1 and "opendkim not running" in out
    assert exec_text(s.container, "postqueue -j")[1].strip() == ""
