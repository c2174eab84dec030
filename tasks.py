"""Invoke tasks for smtp-out: thin wrappers around the smtp_out package (see README)."""

from __future__ import annotations

import json as _json
import os
import time
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

# Each task imports the modules it needs, so that a quick command (smoke-test) does not pay
# for the imports of the others (cryptography, trustme, ...).
from smtp_out import IMAGE, cli, engine


@task
def build_docker_images(c: Context) -> None:
    """Build every docker-services/*/Dockerfile as an image named after its folder."""
    from smtp_out import images

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
    from smtp_out import configtest, images

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
    from smtp_out import smoke

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
    from smtp_out import keys

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
    from smtp_out import suites

    with cli.one_line_errors():
        engine.client()  # one clear line, exit 2, when no engine answers
        raise SystemExit(suites.run_pytest("tests/integration", keep=keep, k=k))


@task
def clean(c: Context) -> None:
    """Remove the containers and networks the tasks and tests left behind (labelled smtp-out.tools)."""
    from smtp_out import containers

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
    from smtp_out import queue

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
    from smtp_out import queue

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
    from smtp_out import bench as benchmarks
    from smtp_out import images

    with cli.one_line_errors():
        client = engine.client()
        images.build_all(client, cli.progress, [s for s in images.discover() if s.tag == IMAGE])
        chosen = tuple(p for p in parts.split(",") if p) or ("image", "startup", "checks", "load")
        res = benchmarks.run(
            client, repeats=repeats, load_messages=messages,
            concurrencies=[int(x) for x in concurrency.split(",")], parts=chosen, progress=cli.progress,
        )  # fmt: skip
        paths = benchmarks.write(res)
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
    from smtp_out import images
    from smtp_out import pins as apt_pins  # imported here: this task's name shadows the module

    with cli.one_line_errors():
        client = engine.client()
        specs = images.discover()
        images.ensure_base_images(client, specs, cli.progress)
        try:
            statuses = apt_pins.check_dockerfiles(client, [s.dockerfile for s in specs])
        except apt_pins.AptQueryFailed as exc:
            raise cli.TaskError(str(exc)) from None
        if not update:
            print(apt_pins.render_json(statuses) if json else apt_pins.render_table(statuses), flush=True)
            raise SystemExit(cli.EXIT_OK if all(s.resolves for s in statuses) else cli.EXIT_FAILED)
        try:
            diffs = apt_pins.update_dockerfiles(statuses)
        except (OSError, ValueError) as exc:
            raise cli.TaskError(f"rewriting the pins failed: {exc}") from None
        stuck = [s for s in statuses if s.status != "ok" and s.candidate is None]
        if json:
            print(apt_pins.render_json(statuses, diffs), flush=True)
        else:
            print(apt_pins.render_table(statuses), flush=True)
            for diff in diffs.values():
                print("\n" + diff.rstrip("\n"), flush=True)
            moved = sum(s.status != "ok" and s.candidate is not None for s in statuses)
            print(f"\nmoved {moved} pins in {len(diffs)} Dockerfiles" if diffs else "\nevery pin is current")
        for s in stuck:
            cli.progress(f"ERROR: {s.pin.package} (line {s.pin.line}): apt has no candidate to move to")
        raise SystemExit(cli.EXIT_FAILED if stuck else cli.EXIT_OK)
