"""Invoke tasks for smtp-out: each wires its options to one library call and one reporter.

Exit codes: 0 success, 1 a failed check or refused operation, 2 bad usage or no Docker engine.
Each task imports what it needs, so that a quick command (smoke-test) does not pay for the
imports of the others (cryptography, trustme, matplotlib, ...).
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

    images.build_all(engine.client(), cli.progress)


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
    """Run the end-to-end suite on a hermetic copy of the production network."""
    engine.client()  # one clear line, exit 2, when no engine answers
    argv = [sys.executable, "-m", "pytest", "tests/integration", "-q", "-p", "no:cacheprovider"]
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
    from smtp_out.ops import queue

    out = Path(archive) if archive else queue.default_archive_name()
    cli.show(
        queue.backup(engine.client(), queue.source_dir(source), out, hold=hold, progress=cli.progress), json
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
    from smtp_out.ops import queue

    cli.show(queue.restore(engine.client(), Path(archive), Path(target)), json)


@task(
    help={
        "repeats": "runs per timing figure (default 3)",
        "messages": "messages per load run (default 1000)",
        "concurrency": "comma-separated client connection counts for the load runs (default 1,4,16)",
        "parts": "comma-separated parts to run: image,startup,checks,load (default all)",
    }
)
def bench(
    c: Context, repeats: int = 3, messages: int = 1000, concurrency: str = "1,4,16", parts: str = ""
) -> None:
    """Measure build, start-up, checks and load; write bench/results/latest.{md,json,png}."""
    from smtp_out.bench import PARTS, measure, report

    concurrencies = cli.parse_int_list("concurrency", concurrency)
    res = measure.run(
        engine.client(), repeats=repeats, load_messages=messages, concurrencies=concurrencies,
        parts=tuple(p for p in parts.split(",") if p) or PARTS, progress=cli.progress,
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
    from smtp_out.ops import pins as apt_pins  # imported here: this task's name shadows the module

    client = engine.client()
    specs = images.discover()
    images.ensure_base_images(client, specs, cli.progress)
    cli.show(apt_pins.check(client, [s.dockerfile for s in specs], update=update), json)
