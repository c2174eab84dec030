"""Invoke tasks for smtp-out: each wires its options to one library call and one reporter.

Exit codes: 0 success, 1 a failed check or refused operation, 2 bad usage or no Docker engine.
Each task imports what it needs, so that a quick command (smoke-test) does not pay for the
imports of the others (cryptography, trustme, matplotlib, ...). Its length is seventeen tasks'
options and their --help texts; no task holds logic.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from invoke.context import Context

from smtp_out import cli
from smtp_out.cli import task
from smtp_out.errors import SmtpOutError


@task()
def build_docker_images(c: Context) -> None:
    """Build every docker-services/*/Dockerfile as an image named after its folder."""
    from smtp_out import engine
    from smtp_out.engine import images

    client = engine.client()
    for warning in images.left_behind(client, images.build_all(client, cli.progress)):
        cli.progress(warning)


@task(help={"build": "build the image first (default yes)", "json": "print the report as JSON"})
def config_test(c: Context, build: bool = True, json: bool = False) -> None:
    """Build smtp-out, run it with a throwaway certificate and DKIM key, and check its configuration."""
    from smtp_out import IMAGE, engine
    from smtp_out.engine import images
    from smtp_out.ops import configtest

    client = engine.client()
    if build:
        built = {IMAGE: images.build_smtp_out(client, cli.progress)}
        for warning in images.left_behind(client, built):
            cli.progress(warning)
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
    c: Context, container: str = "smtp-out", port: str = "1587", host: str = "127.0.0.1", json: bool = False
) -> None:
    """Check a running smtp-out container: processes, listeners, the policy on 587, logs, health."""
    number = cli.port("port", port)
    from smtp_out import engine
    from smtp_out.ops import smoke

    cli.show(smoke.run(engine.client(), container, number, host), json)


@task(
    help={
        "domain": "domain to sign for (required)",
        "selector": "DKIM selector (default mail)",
        "bits": "RSA key size, 2048 to 4096 (default 2048)",
        "out": "directory for <domain>.private and <domain>.txt (default .tmp/opendkim-keys)",
        "json": "print the files and the TXT record as JSON",
    }
)
def dkim_key(
    c: Context,
    *,
    domain: str = "",
    selector: str = "mail",
    bits: str = "2048",
    out: str = ".tmp/opendkim-keys",
    json: bool = False,
) -> None:
    """Generate a DKIM key pair in the flat layout the image mounts, and print the TXT record."""
    from smtp_out import dkim

    size = cli.integer("bits", bits, *dkim.KEY_BITS)
    cli.show(dkim.generate(Path(out), domain, selector, size), json)


@task(
    help={
        "keep": "leave the test network and containers up afterwards, for debugging",
        "k": "only run tests matching this pytest -k expression",
    }
)
def integration_test(c: Context, keep: bool = False, k: str = "") -> None:
    """Run the end-to-end suites (relay and rollout) on a hermetic copy of the production network."""
    from smtp_out import engine, project

    engine.client()  # one clear line, exit 2, when no engine answers
    argv = [sys.executable, "-m", "pytest", *project.INTEGRATION_PYTEST_ARGS, "-q", "-p", "no:cacheprovider"]
    env = {**os.environ, **({"SMTP_OUT_KEEP": "1"} if keep else {})}
    raise SystemExit(subprocess.run([*argv, *(["-k", k] if k else [])], env=env, check=False).returncode)


@task()
def remove_test_leftovers(c: Context) -> None:
    """Remove the containers and networks the tasks and tests left behind (labelled smtp-out.tools)."""
    from smtp_out import engine
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
    from smtp_out import engine
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
    from smtp_out import engine
    from smtp_out.ops.queue import backup

    cli.show(backup.restore(engine.client(), Path(archive), Path(target)), json)


@task(
    help={
        "repeats": "runs per timing figure and per load setting (default 3)",
        "messages": "messages per load run (default 1000)",
        "concurrency": "comma-separated client connection counts for the load runs (default 1,4,16)",
        "parts": "comma-separated parts to run: image,startup,checks,report,load,rollout (default all)",
        "burst": "messages in the signed burst after the load runs (default 10000; 0: none)",
    }
)
def bench(
    c: Context,
    *,
    repeats: str = "3",
    messages: str = "1000",
    concurrency: str = "1,4,16",
    parts: str = "",
    burst: str = "10000",
) -> None:
    """Measure build, start-up, checks, report, load and rollout; write bench/results/latest.{md,json,png}
    and README.md's generated bench section."""
    runs, count, burst_count = (
        cli.integer("repeats", repeats, 1),
        cli.integer("messages", messages, 1),
        cli.integer("burst", burst, 0),
    )
    concurrencies = cli.parse_int_list("concurrency", concurrency)
    from smtp_out import engine
    from smtp_out.bench import PARTS, measure, report

    res = measure.run(
        engine.client(), repeats=runs, load_messages=count, concurrencies=concurrencies,
        parts=tuple(p for p in parts.split(",") if p) or PARTS, burst=burst_count, progress=cli.progress,
    )  # fmt: skip
    paths = report.write(res)
    print(paths["md"].read_text())
    cli.progress(f"wrote {', '.join(str(p) for p in paths.values())}, {report.update_readme()}")


@task()
def bench_readme(c: Context) -> None:
    """Regenerate README.md's benchmark section from bench/results/latest.json (no measuring)."""
    from smtp_out.bench import report

    cli.progress(f"wrote {report.update_readme()}")


@task(
    help={
        "update": "rewrite the Dockerfile pins to the available candidates and show the diff",
        "json": "print JSON",
    }
)
def pins(c: Context, update: bool = False, json: bool = False) -> None:
    """Show each Dockerfile apt pin against the version Debian serves now (exit 1: a pin is gone)."""
    from smtp_out import engine
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
        "preflight_ip": "also print the deliverability preflight for this public IPv4 (not a gate)",
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
    port: str = "1588",
    host: str = "127.0.0.1",
    ca: str = "",
    resolver: str = "",
    preflight_ip: str = "",
    json: bool = False,
) -> None:
    """Start the new image beside production (Phase 2) and check it: healthy, smoke test, DKIM canary.
    With --preflight-ip, print the deliverability preflight of the new container (on stderr; not a gate)."""
    number = cli.port("port", port)
    from smtp_out import engine
    from smtp_out.ops.rollout import parallel

    client = engine.client()
    outcome = parallel.deploy_parallel(
        client, production=production, name=name, image=image or None, queue_dir=_path(queue_dir),
        host=host, port=number, ca=_path(ca), resolver=resolver or None, progress=cli.progress,
    )  # fmt: skip
    if preflight_ip:
        import smtp_out.ops.preflight

        try:
            checked = smtp_out.ops.preflight.run(
                client, name, preflight_ip, resolver=resolver or None, ca=_path(ca)
            )
            cli.progress(checked.text())
        except SmtpOutError as exc:  # deliverability is not the relay's health: report it, go on
            cli.progress(f"deliverability preflight not run: {exc}")
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
    port: str = "1587",
    host: str = "127.0.0.1",
    to: str = "",
    ca: str = "",
    resolver: str = "",
    json: bool = False,
) -> None:
    """DKIM canary: submit, hold, verify against the key published in DNS, then release or delete."""
    number = cli.port("port", port)
    import smtp_out.ops.canary  # the module by its full name: this task's name is canary too
    from smtp_out import engine

    cli.show(
        smtp_out.ops.canary.run(engine.client(), container, host=host, port=number, to=to or None,
                                resolver=resolver or None, ca=_path(ca)),
        json,
    )  # fmt: skip


@task(
    help={
        "ip": "the relay's public IPv4 address, as receivers see it (required: a container cannot see it)",
        "container": "the relay (default smtp-out): its myhostname, HELO name, DKIM key, certificate mount",
        "resolver": "DNS server to ask (default: the system's); only DNS is used",
        "envelope_domain": "the envelope sender's domain for SPF (default: the signing domain)",
        "from_domain": "the From: domain for DMARC (default: the signing domain; a sub-domain of it)",
        "host": "address to read the relay's 587 certificate on (default: where the container publishes 587)",
        "port": "that port (default: the port the container publishes 587 on, e.g. 1587)",
        "tls_name": "the name the certificate must carry (default: the relay's myhostname)",
        "cert_path": "the certificate file on this host (default: what the container mounts at "
        "/etc/postfix/cert/smtp.cert, e.g. /etc/letsencrypt/live/<name>/fullchain.pem)",
        "ca": "CA bundle to validate the certificate with (default: the system's)",
        "json": "print JSON",
    },
    auto_shortflags=False,
)
def preflight(
    c: Context,
    ip: str = "",
    *,
    container: str = "smtp-out",
    resolver: str = "",
    envelope_domain: str = "",
    from_domain: str = "",
    host: str = "",
    port: str = "",
    tls_name: str = "",
    cert_path: str = "",
    ca: str = "",
    json: bool = False,
) -> None:
    """Deliverability preflight: DKIM, SPF, DMARC, reverse DNS, MX and the 587 certificate as
    receivers see them, each failure with its fix; exit 1 on a red flag."""
    if not ip:
        raise cli.UsageError("--ip is required: the relay's public IPv4 address (e.g. --ip 203.0.113.25)")
    number = cli.port("port", port) if port else None
    import smtp_out.ops.preflight  # the module by its full name: this task's name is preflight too
    from smtp_out import engine

    report = smtp_out.ops.preflight.run(
        engine.client(), container, ip, resolver=resolver or None, envelope_domain=envelope_domain or None,
        from_domain=from_domain or None, host=host or None, port=number, tls_name=tls_name or None,
        cert_path=_path(cert_path), ca=_path(ca),
    )  # fmt: skip
    cli.show(report, json)


@task(
    help={
        "container": "one container, or two to compare side by side: smtp-out,smtp-out-new",
        "since": "from when: a duration back (24h, 7d) or a time (2026-11-25T08:00:00Z); default: its start",
        "preflight_ip": "also show the deliverability preflight for this public IPv4 (invoke preflight)",
        "resolver": "DNS server for the preflight (default: the system's)",
        "ca": "CA bundle for the preflight's certificate check (default: the system's)",
        "json": "print JSON (for cron)",
    }
)
def report(
    c: Context,
    *,
    container: str = "smtp-out",
    since: str = "",
    preflight_ip: str = "",
    resolver: str = "",
    ca: str = "",
    json: bool = False,
) -> None:
    """Burn-in report: deliveries, signing, refusals, TLS and milter failures, queue; exit 1 on a red flag.
    With --preflight-ip, the deliverability preflight's verdict too (a figure, not a red flag)."""
    from smtp_out import engine
    from smtp_out.ops.report import burnin

    names = [n for n in container.split(",") if n]
    outcome = burnin.run(engine.client(), names, since, preflight_ip=preflight_ip or None,
                         resolver=resolver or None, ca=_path(ca))  # fmt: skip
    cli.show(outcome, json)


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
    port: str = "1587",
    parallel_port: str = "1588",
    since: str = "",
    host: str = "127.0.0.1",
    ca: str = "",
    resolver: str = "",
    json: bool = False,
) -> None:
    """Move production onto the tested image (Phase 6); on any failure roll back by itself and exit 1."""
    number, parallel_number = cli.port("port", port), cli.port("parallel_port", parallel_port)
    from smtp_out import engine
    from smtp_out.ops.rollout import cutover

    target = cutover.Target(host, number, _path(ca), resolver or None)
    outcome = cutover.cutover(
        engine.client(), production=production, parallel=parallel, parallel_port=parallel_number,
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
    port: str = "1587",
    host: str = "127.0.0.1",
    ca: str = "",
    resolver: str = "",
    json: bool = False,
) -> None:
    """Recover an interrupted rollout, or roll production back to a rollback point; verified."""
    number = cli.port("port", port)
    from smtp_out import engine
    from smtp_out.ops.rollout import cutover

    target = cutover.Target(host, number, _path(ca), resolver or None)
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
    from smtp_out import engine
    from smtp_out.ops.rollout import cutover

    cli.show(cutover.status(engine.client(), production=production, compose_dir=_path(compose_dir)), json)


@task(
    help={
        "production": "production container (default smtp-out)",
        "keep": "rollback points to keep (default 3)",
        "json": "print JSON",
    }
)
def rollout_cleanup(c: Context, production: str = "smtp-out", keep: str = "3", json: bool = False) -> None:
    """Phase 7: remove stopped parallel containers and their queues (only when empty), old rollback points."""
    points = cli.integer("keep", keep, 0)
    from smtp_out import engine
    from smtp_out.ops.rollout import cleanup

    cli.show(cleanup.cleanup(engine.client(), production=production, keep=points), json)
