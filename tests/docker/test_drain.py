"""The drain a rollout puts on a relay (defer_transports, then a reload) when its Postfix is not
running (a container still starting, or one whose master died): it fails, and main.cf is left as
it was, so that the Postfix started later does not start drained."""

from __future__ import annotations

import docker
import pytest

from smtp_out import LABEL
from smtp_out.engine.containers import exec_text, unique
from smtp_out.ops.queue.archive import QueueError
from smtp_out.ops.queue.relay import DRAINED, drain, settings

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("before", ["", "smtp"], ids=["not-set", "set-by-the-operator"])
def test_a_drain_of_a_relay_whose_postfix_is_not_running_fails_and_leaves_main_cf_as_it_was(
    client: docker.DockerClient, image: str, before: str
) -> None:
    relay = client.containers.run(image, ["sleep", "300"], detach=True, name=unique("smtp-out-drain"),
                                  labels={LABEL: "1"}, network_mode="none")  # fmt: skip
    try:
        if before:
            assert exec_text(relay, f"postconf -e 'defer_transports = {before}'")[0] == 0
        assert settings(relay, DRAINED) == {DRAINED: before or None}
        with pytest.raises(QueueError, match="not running"):
            drain(relay)
        assert settings(relay, DRAINED) == {DRAINED: before or None}
    finally:
        relay.remove(force=True)
