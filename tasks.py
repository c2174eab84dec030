"""Invoke tasks for smtp-out: thin wrappers around the smtp_out package (see README)."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from smtp_out import IMAGE, cli, configtest, engine, images


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
