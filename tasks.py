"""Invoke tasks for smtp-out: thin wrappers around the smtp_out package (see README)."""

from __future__ import annotations

import json as _json
import os
import time
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

from smtp_out import IMAGE, cli, configtest, containers, engine, images, keys, queue, smoke, suites


@task
def build_docker_images(c: Context) -> None:
    """Build every docker-services/*/Dockerfile as an image named after its folder."""
    with cli.one_line_errors():
        try:
            images.build_all(engine.client(), cli.progress)
        except images.BuildFailed as exc:
            for line in exc.output[-15:]:
                cli.progress(f"  | {line}")
            raise cli.TaskError(str(exc)) from None


@task(help={"build": "build the image first (default yes)", "json": "print the report as JSON"})
def config_test(c: Context, build: bool = True, json: bool = False) -> None:
    """Build smtp-out, run it with a throwaway certificate and DKIM key, and check its configuration."""
    with cli.one_line_errors():
        client = engine.client()
        if build:
            try:
                images.build_all(client, cli.progress, [s for s in images.discover() if s.tag == IMAGE])
            except images.BuildFailed as exc:
                raise cli.TaskError(str(exc)) from None
        report, facts = configtest.run(client)
        if not report.ok and facts.log:
            cli.progress("--- container log ---\n" + facts.log.rstrip())
        cli.emit(report, json)


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
    with cli.one_line_errors():
        cli.emit(smoke.run(engine.client(), container, port, host), json)


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
    with cli.one_line_errors():
        try:
            key = keys.generate(Path(out), domain, selector, bits)
        except FileExistsError as exc:
            raise cli.TaskError(str(exc)) from None
        except ValueError as exc:
            raise cli.TaskError(str(exc), cli.EXIT_USAGE) from None
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
    with cli.one_line_errors():
        engine.client()  # one clear line, exit 2, when no engine answers
        raise SystemExit(suites.run_pytest("tests/integration", keep=keep, k=k))


@task
def clean(c: Context) -> None:
    """Remove the containers and networks the tasks and tests left behind (labelled smtp-out.tools)."""
    with cli.one_line_errors():
        print(f"removed {containers.remove_leftovers(engine.client())} containers and networks")


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
    """Back up a Postfix queue directory into a checksummed archive (numeric owners, modes, times)."""
    with cli.one_line_errors():
        src = source or os.environ.get("POSTFIX_DIR_ROOT", "")
        if not src:
            raise cli.TaskError("give the queue directory with --source or POSTFIX_DIR_ROOT", cli.EXIT_USAGE)
        out = Path(archive or time.strftime("smtp-out-queue-%Y%m%dT%H%M%SZ.tar.gz", time.gmtime()))
        running = engine.client().containers.list()
        try:
            manifest = queue.backup(Path(src), out, running, hold=hold, progress=cli.progress)
        except queue.QueueError as exc:
            raise cli.TaskError(
                str(exc), cli.EXIT_USAGE if "--hold" in str(exc) else cli.EXIT_FAILED
            ) from None
        summary = {
            "archive": str(out),
            "files": len(manifest.entries),
            "messages": len(manifest.messages),
            "held_by_backup": manifest.held_by_backup,
        }
        print(
            _json.dumps(summary)
            if json
            else f"wrote {out}: {len(manifest.messages)} message(s), "
            f"{len(manifest.entries)} entries, checksums in {queue.MANIFEST}"
        )


@task(
    help={
        "archive": "archive written by queue-backup",
        "target": "new or empty directory to restore into (required)",
    }
)
def queue_restore(c: Context, archive: str, target: str) -> None:
    """Verify a queue archive against its manifest, then restore it into an empty directory."""
    with cli.one_line_errors():
        try:
            manifest = queue.restore(Path(archive), Path(target))
        except queue.QueueError as exc:
            raise cli.TaskError(str(exc)) from None
        print(
            f"verified and restored {len(manifest.messages)} message(s) into {target}"
            + (
                f"; {len(manifest.held_by_backup)} held by the backup go to incoming/"
                if manifest.held_by_backup
                else ""
            )
        )
