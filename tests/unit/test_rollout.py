"""The rollout's pure parts, without Docker: container configurations and their changed copies,
the parallel container's configuration, the step bookkeeping and outcome, the journal, the
inputs deploy-parallel checks, compose's resolved mounts, and private files."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from smtp_out.checks import Check, run_checks
from smtp_out.engine.config import ContainerConfig, Network
from smtp_out.errors import SmtpOutError, UsageError
from smtp_out.ops.rollout import registry
from smtp_out.ops.rollout.common import (
    RolloutOutcome,
    StepFailed,
    Steps,
    repository,
    short,
    tag_of,
    write_private,
)
from smtp_out.ops.rollout.compose import ComposeService, mount_differences
from smtp_out.ops.rollout.journal import Journal
from smtp_out.ops.rollout.parallel import parallel_config, validate
from smtp_out.ops.rollout.points import RollbackPoint, save

SPOOL = "/var/spool/postfix"


def inspect(**over: Any) -> dict[str, Any]:
    """A production container's `docker inspect`, as compose makes one."""
    attrs: dict[str, Any] = {
        "Id": "0123456789abcdef" * 4,
        "Name": "/smtp-out",
        "Image": "sha256:" + "a" * 64,
        "Config": {
            "Image": "smtp-out",
            "Hostname": "smtp-out",
            "Env": ["TZ=UTC", "PATH=/usr/bin", "POSTFIX_x=1"],
            "Labels": {"com.docker.compose.project": "p", "com.docker.compose.service": "smtp-out",
                       "own": "1",
                       "image.label": "from-image"},
            "Cmd": None,
            "ExposedPorts": {"587/tcp": {}},
        },
        "HostConfig": {
            "Binds": ["/srv/queue:/var/spool/postfix:rw", "/srv/keys:/etc/opendkim/keys:rw"],
            "PortBindings": {"587/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1587"}]},
            "RestartPolicy": {"Name": "always"},
        },
        "NetworkSettings": {
            "Networks": {"prod": {"Aliases": ["smtp-out", "0123456789ab"], "IPAMConfig": None}}
        },
    }  # fmt: skip
    attrs.update(over)
    return attrs


IMAGE_CFG = {
    "Env": ["PATH=/usr/bin"],
    "Labels": {"image.label": "from-image"},
    "ExposedPorts": {"587/tcp": {}},
}


@pytest.fixture
def prod() -> ContainerConfig:
    return ContainerConfig.from_attrs(inspect(), IMAGE_CFG)


# --- ContainerConfig --------------------------------------------------------------------------


def test_from_attrs_keeps_what_the_operator_gave_less_what_the_image_supplies(prod: ContainerConfig) -> None:
    assert prod.name == "smtp-out" and prod.image == "smtp-out" and prod.image_id.startswith("sha256:")
    assert prod.env == {"TZ": "UTC", "POSTFIX_x": "1"}
    assert "image.label" not in prod.labels and prod.labels["own"] == "1"
    assert prod.networks == (Network("prod", ("smtp-out",), None),)  # the engine's short-id alias dropped
    assert prod.exposed_ports == ()
    assert prod.mount_source(SPOOL) == "/srv/queue" and prod.mount_source("/nowhere") is None


def test_with_copies_change_one_thing_and_leave_the_original(prod: ContainerConfig) -> None:
    renamed = prod.with_name("smtp-out-new", hostname="smtp-out-new")
    assert (renamed.name, renamed.hostname, prod.name, prod.hostname) == (
        "smtp-out-new", "smtp-out-new", "smtp-out", "smtp-out"
    )  # fmt: skip
    assert prod.with_name("x").hostname == "smtp-out"
    assert prod.with_image("smtp-out:candidate").image == "smtp-out:candidate" and prod.image == "smtp-out"
    labelled = prod.with_labels({"mine": "1"}, drop_prefix="com.docker.compose.")
    assert labelled.labels == {"own": "1", "mine": "1"}
    assert prod.with_labels({"mine": "1"}).labels["com.docker.compose.project"] == "p"
    ported = prod.with_published_port("587/tcp", "127.0.0.1", 1588)
    assert ported.host_config["PortBindings"] == {"587/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1588"}]}
    assert prod.host_config["PortBindings"]["587/tcp"][0]["HostPort"] == "1587"


def test_with_mount_replaces_a_bind_or_a_mount_at_the_same_target(prod: ContainerConfig) -> None:
    moved = prod.with_mount(SPOOL, "/srv/queue-new")
    assert moved.mount_source(SPOOL) == "/srv/queue-new"
    assert [b for b in moved.host_config["Binds"] if SPOOL in b] == ["/srv/queue-new:/var/spool/postfix:rw"]
    assert moved.mount_source("/etc/opendkim/keys") == "/srv/keys"
    assert prod.mount_source(SPOOL) == "/srv/queue"
    mounts = replace_host(prod, Binds=None, Mounts=[{"Target": SPOOL, "Source": "/v", "Type": "bind"}])
    assert mounts.mount_source(SPOOL) == "/v"
    again = mounts.with_mount(SPOOL, "/w", read_only=True)
    assert again.host_config["Mounts"] is None and again.host_config["Binds"] == ["/w:/var/spool/postfix:ro"]


def replace_host(config: ContainerConfig, **values: Any) -> ContainerConfig:
    from dataclasses import replace

    return replace(config, host_config={**config.host_config, **values})


def test_parallel_config_differs_from_production_only_where_it_must(prod: ContainerConfig) -> None:
    par = parallel_config(prod, name="smtp-out-new", image="smtp-out:candidate", queue_dir=Path("/srv/q-new"),
                          host="127.0.0.1", port=1588)  # fmt: skip
    assert (par.name, par.hostname, par.image) == ("smtp-out-new", "smtp-out-new", "smtp-out:candidate")
    assert par.mount_source(SPOOL) == "/srv/q-new"
    assert par.mount_source("/etc/opendkim/keys") == "/srv/keys"
    assert par.host_config["PortBindings"] == {"587/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1588"}]}
    assert par.networks == (Network("prod", ("smtp-out-new",)),), "never reachable by production's name"
    assert not [k for k in par.labels if k.startswith("com.docker.compose.")], "compose must not adopt it"
    assert par.labels["smtp-out.rollout"] == "parallel" and par.labels["smtp-out.rollout.of"] == "smtp-out"
    assert par.env == prod.env and par.host_config["RestartPolicy"] == prod.host_config["RestartPolicy"]


@pytest.mark.parametrize(
    ("kw", "word"),
    [({"port": 70000}, "--port 70000"), ({"port": 0}, "--port 0"), ({"host": "localhost"}, "--host"),
     ({"name": "bad name"}, "--name"), ({"health_timeout": 0}, "timeout")],
)  # fmt: skip
def test_deploy_parallel_refuses_bad_inputs_before_touching_anything(kw: dict[str, Any], word: str) -> None:
    args: dict[str, Any] = {"name": "smtp-out-new", "host": "127.0.0.1", "port": 1588, "health_timeout": 60.0}
    with pytest.raises(UsageError, match=word) as err:
        validate(**{**args, **kw})
    assert err.value.exit_code == 2
    validate(**args)


# --- references ---------------------------------------------------------------------------------


def test_image_references() -> None:
    assert repository("smtp-out") == "smtp-out" and repository("smtp-out:1") == "smtp-out"
    assert repository("registry:5000/smtp-out:1") == "registry:5000/smtp-out"
    assert tag_of("smtp-out") == "smtp-out:latest" and tag_of("registry:5000/x") == "registry:5000/x:latest"
    assert short("sha256:" + "b" * 64) == "b" * 12


# --- steps and the outcome ----------------------------------------------------------------------


def test_steps_are_numbered_printed_and_recorded() -> None:
    out, lines = RolloutOutcome("cutover"), list[str]()
    steps = Steps(out, 3, lines.append)
    with steps.step("first"):
        pass
    steps.line("second")
    assert out.steps == ["cutover [1/3] first", "cutover [2/3] second"]
    assert lines[0] == "cutover [1/3] first" and lines[1].strip().startswith("ok (")
    assert out.exit_code == 0 and out.text().endswith("=== cutover: done ===")


def test_a_failing_step_is_named_whatever_failed_in_it() -> None:
    steps = Steps(RolloutOutcome("rollback"), 2, lambda _: None)
    with pytest.raises(StepFailed) as err, steps.step("drain"):
        raise SmtpOutError("deliveries still in flight")
    assert (err.value.step, err.value.reason) == ("drain", "deliveries still in flight")
    with pytest.raises(StepFailed, match="the engine refused: no such image"), steps.step("tag"):
        raise docker.errors.APIError("500", explanation="no such image")
    with pytest.raises(ValueError, match="not an expected"), steps.step("a bug"):
        raise ValueError("not an expected failure: not dressed up as one")


def test_a_failed_check_fails_the_step_and_the_outcome() -> None:
    out = RolloutOutcome("cutover")
    steps = Steps(out, 1, lambda _: None)
    report = run_checks("T", [Check("c", lambda f: 1, lambda v: v == 2, "2")], None)
    with pytest.raises(StepFailed, match="1 check\\(s\\) failed: c"):
        steps.check(report, "smoke test")
    assert out.reports == [report] and out.exit_code == 1


def test_outcome_says_how_it_ended() -> None:
    assert (
        RolloutOutcome("deploy-parallel", done="parallel container ready")
        .text()
        .endswith("=== deploy-parallel: parallel container ready ===")
    )
    failed = RolloutOutcome("cutover", failed="verify: exited", rolled_back_to="r:rollback-1 (abc)")
    assert failed.text().endswith(
        "=== cutover FAILED at verify: exited; rolled back to r:rollback-1 (abc), verified ==="
    )
    failed.rollback_failed = "verify: no 220"
    assert failed.text().endswith("and the rollback FAILED too: verify: no 220 ===") and failed.exit_code == 1
    assert failed.to_json()["ok"] is False


# --- the journal and private files -----------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_journal_records_each_step_before_and_after_and_reads_back(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    j = Journal.start(folder, "cutover", "smtp-out", "smtp-out-new")
    assert j.interrupted and "before its first change" in j.where()
    j.begin(
        "drain-production",
        "cutover [10/14] drain smtp-out",
        container="c1",
        settings={"defer_transports": None},
    )
    assert Journal.load(folder).get("drain-production").state == "begun"  # type: ignore[union-attr]
    j.begin("backup", "cutover [6/14] back up")
    j.note("backup", already_held=["A1"])
    j.done("drain-production")
    back = Journal.load(folder)
    assert back is not None and back.interrupted
    assert back.get("drain-production").state == "done"  # type: ignore[union-attr]
    assert back.get("drain-production").data["settings"] == {"defer_transports": None}  # type: ignore[union-attr]
    assert back.get("backup").data == {"already_held": ["A1"]}  # type: ignore[union-attr]
    assert back.begun("backup") and not back.begun("tag")
    assert (
        "INTERRUPTED at cutover [6/14] back up (begun)" in back.where() and "invoke rollback" in back.where()
    )
    back.finish("done")
    assert not Journal.load(folder).interrupted  # type: ignore[union-attr]
    assert mode(folder) == 0o700 and mode(folder / "journal.json") == 0o600
    assert Journal.load(tmp_path / "nothing") is None


def test_records_are_private_whatever_the_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        write_private(tmp_path / "d" / "f.json", "{}")
        point = RollbackPoint("rollback-1", "r:rollback-1", "sha256:x", "r", "1", "p", "proj", "svc", "/w",
                              [],
                              {"Config": {"Env": ["SECRET=1"]}})  # fmt: skip
        path = save(point, tmp_path / "points")
    finally:
        os.umask(old)
    assert mode(tmp_path / "d") == 0o700 and mode(tmp_path / "d" / "f.json") == 0o600
    assert mode(tmp_path / "points") == 0o700 and mode(path) == 0o600


def test_the_registry_finds_a_rollout_by_production_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "compose" / ".tmp" / "smtp-out-rollout"
    folder.mkdir(parents=True)
    assert registry.folder_of("smtp-out") is None
    registry.remember("smtp-out", folder)
    assert registry.folder_of("smtp-out") == folder and registry.folder_of("other") is None
    assert mode(tmp_path / "xdg" / "smtp-out" / "rollouts.json") == 0o600


# --- compose's resolved mounts -------------------------------------------------------------------


def test_compose_binds_come_from_the_parsed_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ComposeService("p", "smtp-out", tmp_path, ("docker-compose.yml",))
    text = f"""
services:
  smtp-out:
    image: smtp-out
    volumes:
    - {tmp_path}/q:/var/spool/postfix:rw
    - ./keys:/etc/opendkim/keys
    - type: bind
      source: {tmp_path}/cert.pem
      target: /etc/postfix/cert/smtp.cert
    - named:/data
"""
    monkeypatch.setattr(ComposeService, "run", lambda self, *a, **k: text)
    binds = service.binds()
    assert binds == {
        SPOOL: str(tmp_path / "q"),
        "/etc/opendkim/keys": str(tmp_path / "keys"),
        "/etc/postfix/cert/smtp.cert": str(tmp_path / "cert.pem"),
    }
    assert mount_differences({SPOOL: str(tmp_path / "q")}, binds) == []
    moved = mount_differences({SPOOL: "/elsewhere"}, binds)
    assert moved == [f"{SPOOL}: {tmp_path / 'q'} instead of /elsewhere"]
    assert mount_differences({"/x": "/y"}, binds) == ["/x: nothing instead of /y"]


# --- verifying a predecessor image -------------------------------------------------------------


def test_a_predecessor_is_judged_on_what_it_can_show() -> None:
    from smtp_out.checks import Verdict
    from smtp_out.ops.rollout.cutover import _as_predecessor, _canary_na

    checks: list[Check[None]] = [
        Check("Port accessible (220 banner)", lambda f: "220 x", lambda v: str(v).startswith("220"), "220"),
        Check("Milter default action not accept", lambda f: "accept", lambda v: v == "tempfail", "tempfail"),
        Check("Healthcheck healthy", lambda f: "none", lambda v: v == "healthy", "healthy"),
        Check("Container running", lambda f: "exited", lambda v: v == "running", "running"),
    ]
    report = _as_predecessor(run_checks("SMOKE", checks, None), healthcheck=False)
    verdicts = {r.name: r.verdict for r in report.results}
    assert verdicts == {
        "Port accessible (220 banner)": Verdict.PASS,
        "Milter default action not accept": Verdict.WARN,
        "Healthcheck healthy": Verdict.NA,
        "Container running": Verdict.FAIL,  # what it must show, it must show
    }
    assert not report.ok
    assert "does not apply: the image defines no healthcheck" in report.text()
    with_health = _as_predecessor(run_checks("SMOKE", checks[2:3], None), healthcheck=True)
    assert with_health.results[0].verdict is Verdict.FAIL
    canary = _canary_na("smtp-out")
    assert canary.ok and canary.results[0].verdict is Verdict.NA and "no canary hold" in canary.text()


class FakeRelay:
    """A container whose `postconf -n -h` answers from a dict and that records what it ran."""

    name = "relay"

    def __init__(self, main_cf: dict[str, str]) -> None:
        self.main_cf, self.ran = main_cf, list[str]()

    def exec_run(self, argv: list[str], user: str = "root", demux: bool = False) -> Any:
        from types import SimpleNamespace

        cmd = argv[-1]
        self.ran.append(cmd)
        if cmd.startswith("postconf -n -h "):
            value = self.main_cf.get(cmd.split()[3])
            return SimpleNamespace(exit_code=0, output=(value + "\n" if value else "").encode())
        return SimpleNamespace(exit_code=0, output=b"")


def test_settings_read_what_main_cf_sets_and_restore_puts_it_back() -> None:
    from smtp_out.ops.queue.relay import DRAINED, QUIESCED, restore, settings

    relay = FakeRelay({"smtpd_client_restrictions": "permit_mynetworks, reject"})
    before = settings(relay, DRAINED, QUIESCED)  # type: ignore[arg-type]
    assert before == {DRAINED: None, QUIESCED: "permit_mynetworks, reject"}
    restore(relay, before)  # type: ignore[arg-type]
    script = relay.ran[-1]
    assert "postconf -X defer_transports" in script, "not set before: back to Postfix's default"
    assert "postconf -e 'smtpd_client_restrictions = permit_mynetworks, reject'" in script
    assert script.index("touch -d") < script.index("postfix reload"), "reloaded after the main.cf change"
