"""Invoke tasks for smtp-out: each wires its options to one library call and one reporter.

Exit codes: 0 success, 1 a failed check or refused operation, 2 bad usage or no Docker engine.
Each task imports what it needs, so that a quick command (smoke-test) does not pay for the
imports of the others (cryptography, trustme, matplotlib, ...). Its length is sixteen tasks'
options and their --help texts; no task holds logic.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from invoke.context import Context

from smtp_out import cli, engine
from smtp_out.cli import task


@task()
def build_docker_images(c: Context) -> None:
    """Build every docker-services/*/Dockerfile as an image named after its folder."""
    from smtp_out.engine import images

    client = engine.client()
    for warning in images.left_behind(client, images.build_all(client, cli.progress)):
        cli.progress(warning)


@task(help={"build": "build the image first (default yes)", "json": "print the report as JSON"})
def config_test(c: Context, build: bool = True, json: bool = False) -> None:
    """Build smtp-out, run it with a throwaway certificate and DKIM key, and check its configuration."""
    from smtp_out.engine import images
    from smtp_out.ops import configtest

    client = engine.client()
    if build:
        images.build_smtp_out(client, cli.progress)
    report, facts = configtest.run(client)
    if not report.ok and facts.log:
        cli.progress("--- container log ---\n" + facts.log.rstrip())
    cli.show(report, json)


@task(
    help={
        "container": "container to test (default smtp-out)",
        "port": "host port published for 587 (default 1587)",
        "host": "address the port is published on (default 127.0.0.1)",
        "json": "print the report as JSON",
    }
)
def smoke_test(
    c: Context, container: str = "smtp-out", port: int = 1587, host: str = "127.0.0.1", json: bool = False
) -> None:
    """Check a running smtp-out container: processes, listeners, configuration, logs, health."""
    from smtp_out.ops import smoke

    cli.show(smoke.run(engine.client(), container, port, host), json)


@task(
    help={
        "domain": "domain to sign for (required)",
        "selector": "DKIM selector (default mail)",
        "bits": "RSA key size (default 2048)",
        "out": "directory for <domain>.private and <domain>.txt (default .tmp/opendkim-keys)",
    }
)
def dkim_key(
    c: Context, domain: str, selector: str = "mail", bits: int = 2048, out: str = ".tmp/opendkim-keys"
) -> None:
    """Generate a DKIM key pair in the flat layout the image mounts, and print the TXT record."""
    from smtp_out import dkim

    key = dkim.generate(Path(out), domain, selector, bits)
    print(f"wrote {key.private} (mode 600) and {key.txt}")
    print(f"publish this TXT record for {selector}._domainkey.{domain}:")
    print(key.record, end="")


@task(
    help={
        "keep": "leave the test network and containers up afterwards, for debugging",
        "k": "only run tests matching this pytest -k expression",
    }
)
def integration_test(c: Context, keep: bool = False, k: str = "") -> None:
    """Run the end-to-end suites (relay and rollout) on a hermetic copy of the production network."""
    engine.client()  # one clear line, exit 2, when no engine answers
    suites = ["tests/integration", "tests/rollout"]
    argv = [sys.executable, "-m", "pytest", *suites, "-q", "-p", "no:cacheprovider"]
    env = {**os.environ, **({"SMTP_OUT_KEEP": "1"} if keep else {})}
    raise SystemExit(subprocess.run([*argv, *(["-k", k] if k else [])], env=env, check=False).returncode)


@task()
def clean(c: Context) -> None:
    """Remove the containers and networks the tasks and tests left behind (labelled smtp-out.tools)."""
    from smtp_out.engine import networks

    print(f"removed {networks.remove_leftovers(engine.client())} containers and networks")


@task(
    help={
        "source": "queue directory to back up (default: $POSTFIX_DIR_ROOT)",
        "archive": "archive to write (default smtp-out-queue-<UTC time>.tar.gz); never overwritten",
        "hold": "if a running container mounts the queue: hold it (postsuper -h ALL), back up, release",
        "json": "print the manifest summary as JSON",
    }
)
def queue_backup(
    c: Context, source: str = "", archive: str = "", hold: bool = False, json: bool = False
) -> None:
    """Back up a Postfix queue directory (read as root through the engine) into a checksummed archive."""
    from smtp_out.ops.queue import backup

    out = Path(archive) if archive else backup.default_archive_name()
    cli.show(
        backup.backup(engine.client(), backup.source_dir(source), out, hold=hold, progress=cli.progress), json
    )


@task(
    help={
        "archive": "archive written by queue-backup",
        "target": "new or empty directory to restore into (required)",
        "json": "print the summary as JSON",
    }
)
def queue_restore(c: Context, archive: str, target: str, json: bool = False) -> None:
    """Verify a queue archive against its manifest, then restore it (as root, through the engine)
    into a new or empty directory: only verified bytes, no setuid/setgid, no names outside it."""
    from smtp_out.ops.queue import backup

    cli.show(backup.restore(engine.client(), Path(archive), Path(target)), json)


@task(
    help={
        "repeats": "runs per timing figure (default 3)",
        "messages": "messages per load run (default 1000)",
        "concurrency": "comma-separated client connection counts for the load runs (default 1,4,16)",
        "parts": "comma-separated parts to run: image,startup,checks,report,load,rollout (default all)",
        "burst": "messages in the signed burst after the load runs (default 10000; 0: none)",
    }
)
def bench(
    c: Context,
    *,
    repeats: int = 3,
    messages: int = 1000,
    concurrency: str = "1,4,16",
    parts: str = "",
    burst: int = 10_000,
) -> None:
    """Measure build, start-up, checks, report, load and rollout; write bench/results/latest.{md,json,png}."""
    from smtp_out.bench import PARTS, measure, report

    concurrencies = cli.parse_int_list("concurrency", concurrency)
    res = measure.run(
        engine.client(), repeats=repeats, load_messages=messages, concurrencies=concurrencies,
        parts=tuple(p for p in parts.split(",") if p) or PARTS, burst=burst, progress=cli.progress,
    )  # fmt: skip
    paths = report.write(res)
    print(paths["md"].read_text())
    cli.progress(f"wrote {', '.join(str(p) for p in paths.values())}")


@task(
    help={
        "update": "rewrite the Dockerfile pins to the available candidates and show the diff",
        "json": "print JSON",
    }
)
def pins(c: Context, update: bool = False, json: bool = False) -> None:
    """Show each Dockerfile apt pin against the version Debian serves now (exit 1: a pin is gone)."""
    from smtp_out.engine import images
    from smtp_out.ops.pins import drift

    client = engine.client()
    specs = images.discover()
    images.ensure_base_images(client, specs, cli.progress)
    from smtp_out.testing.rollout import SPEC_IMAGE  # the rollout tests' "old" image: pinned alike

    dockerfiles = [s.dockerfile for s in specs] + [SPEC_IMAGE.dockerfile]
    cli.show(drift.check(client, dockerfiles, update=update), json)


# --- the rollout (README: "Rolling out a new image") --------------------------------------

_CHECK_HELP = {
    "host": "address the relay's port is published on (default 127.0.0.1)",
    "ca": "CA bundle to verify STARTTLS with (default: the system's)",
    "resolver": "DNS server to read the published DKIM key from (default: the system's)",
    "json": "print JSON",
}


def _path(value: str) -> Path | None:
    return Path(value) if value else None


@task(
    help={
        "production": "the production container to copy (default smtp-out)",
        "name": "name of the parallel container (default smtp-out-new)",
        "image": "image to run (default: the new build that moved production's tag, or <repo>:candidate)",
        "queue_dir": "fresh queue directory (default: production's queue directory + '-new')",
        "port": "127.0.0.1 port to publish 587 on (default 1588)",
        **_CHECK_HELP,
    }
)
def deploy_parallel(
    c: Context,
    *,
    production: str = "smtp-out",
    name: str = "smtp-out-new",
    image: str = "",
    queue_dir: str = "",
    port: int = 1588,
    host: str = "127.0.0.1",
    ca: str = "",
    resolver: str = "",
    json: bool = False,
) -> None:
    """Start the new image beside production (Phase 2) and check it: healthy, smoke test, DKIM canary."""
    from smtp_out.ops.rollout import parallel

    outcome = parallel.deploy_parallel(
        engine.client(), production=production, name=name, image=image or None, queue_dir=_path(queue_dir),
        host=host, port=port, ca=_path(ca), resolver=resolver or None, progress=cli.progress,
    )  # fmt: skip
    cli.show(outcome, json)


@task(
    help={
        "container": "relay to send the canary through (default smtp-out)",
        "port": "host port its 587 is published on (default 1587)",
        "to": "release the checked message to this address (default: delete it)",
        **_CHECK_HELP,
    }
)
def canary(
    c: Context,
    *,
    container: str = "smtp-out",
    port: int = 1587,
    host: str = "127.0.0.1",
    to: str = "",
    ca: str = "",
    resolver: str = "",
    json: bool = False,
) -> None:
    """DKIM canary: submit, hold, verify against the key published in DNS, then release or delete."""
    from smtp_out.ops import canary as dkim_canary  # this task's name shadows the module

    cli.show(
        dkim_canary.run(engine.client(), container, host=host, port=port, to=to or None,
                        resolver=resolver or None, ca=_path(ca)),
        json,
    )  # fmt: skip


@task(
    help={
        "container": "one container, or two to compare side by side: smtp-out,smtp-out-new",
        "since": "from when: a duration back (24h, 7d) or a time (2026-11-25T08:00:00Z); default: its start",
        "json": "print JSON (for cron)",
    }
)
def report(c: Context, container: str = "smtp-out", since: str = "", json: bool = False) -> None:
    """Burn-in report: deliveries, signing, refusals, TLS and milter failures, queue; exit 1 on a red flag."""
    from smtp_out.ops.report import burnin

    cli.show(burnin.run(engine.client(), [n for n in container.split(",") if n], since), json)


@task(
    help={
        "production": "production container (default smtp-out), managed by docker-compose",
        "parallel": "the parallel container that passed its burn-in (default smtp-out-new)",
        "port": "production's published port (default 1587)",
        "parallel_port": "the parallel container's published port (default 1588)",
        "since": "start of the burn-in window for its report (default: the parallel container's start)",
        **_CHECK_HELP,
    }
)
def cutover(
    c: Context,
    *,
    production: str = "smtp-out",
    parallel: str = "smtp-out-new",
    port: int = 1587,
    parallel_port: int = 1588,
    since: str = "",
    host: str = "127.0.0.1",
    ca: str = "",
    resolver: str = "",
    json: bool = False,
) -> None:
    """Move production onto the tested image (Phase 6); on any failure roll back by itself and exit 1."""
    from smtp_out.ops.rollout import cutover

    target = cutover.Target(host, port, _path(ca), resolver or None)
    outcome = cutover.cutover(
        engine.client(), production=production, parallel=parallel, parallel_port=parallel_port,
        since=since, target=target, progress=cli.progress,
    )  # fmt: skip
    cli.show(outcome, json)


@task(
    help={
        "production": "production container (default smtp-out)",
        "to": "rollback point (rollback-<time>; default: the newest, or the interrupted rollout's)",
        "compose_dir": "the compose project's directory (only needed when production's container is gone "
        "and no rollout of it was recorded on this host)",
        "port": "production's published port (default 1587)",
        **_CHECK_HELP,
    }
)
def rollback(
    c: Context,
    *,
    production: str = "smtp-out",
    to: str = "",
    compose_dir: str = "",
    port: int = 1587,
    host: str = "127.0.0.1",
    ca: str = "",
    resolver: str = "",
    json: bool = False,
) -> None:
    """Recover an interrupted rollout, or roll production back to a rollback point; verified."""
    from smtp_out.ops.rollout import cutover

    target = cutover.Target(host, port, _path(ca), resolver or None)
    cli.show(cutover.rollback(engine.client(), production=production, to=to, compose_dir=_path(compose_dir),
                              target=target, progress=cli.progress), json)  # fmt: skip


@task(
    help={
        "production": "production container (default smtp-out)",
        "compose_dir": "the compose project's directory (when production's container is gone)",
        "json": "print JSON",
    }
)
def rollout_status(
    c: Context, production: str = "smtp-out", compose_dir: str = "", json: bool = False
) -> None:
    """Where the rollout stands: the journal's steps, production now; exit 1 when one was interrupted."""
    from smtp_out.ops.rollout import cutover

    cli.show(cutover.status(engine.client(), production=production, compose_dir=_path(compose_dir)), json)


@task(
    help={
        "production": "production container (default smtp-out)",
        "keep": "rollback points to keep (default 3)",
        "json": "print JSON",
    }
)
def cleanup(c: Context, production: str = "smtp-out", keep: int = 3, json: bool = False) -> None:
    """Phase 7: remove stopped parallel containers and their queues (only when empty), old rollback points."""
    from smtp_out.ops.rollout import cleanup

    cli.show(cleanup.cleanup(engine.client(), production=production, keep=keep), json)
