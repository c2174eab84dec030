"""A hermetic copy of production as docker-compose runs it, for the rollout tests and benchmarks.

    prod     10.5.5.0/24 (--internal)   resolver .53, sink MX .25, slow MX .26 (down until
                                        started: its mail is deferred), the app .100, and the
                                        relays (by name: production answers to `smtp-out`)
    publish  192.168.251.0/24           a bridge with IP masquerading off: only for publishing
                                        127.0.0.1:1587 / 1588; nothing is routed out

Production is started by `docker-compose up -d` from a compose file shaped like the spec's
smtp-out service (container_name, `image: <repo>`, restart: always, bind-mounted queue and
secrets, 127.0.0.1:1587:587, dns: the test resolver). The resolver publishes the DKIM key of the
run's material at mail._domainkey.feedsubscription.com, so the canary checks against DNS.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import IPAMConfig, IPAMPool

from .. import IMAGE, LABEL
from ..dkim import DKIM_DOMAIN, DKIM_SELECTOR, verify
from ..engine.containers import exec_text, unique
from ..engine.images import ImageSpec, build
from ..engine.networks import create_internal_network, remove_network
from ..material import Material
from ..ops.rollout.compose import ComposeService
from ..ops.rollout.cutover import Target, wait_serving
from ..ops.rollout.parallel import deploy_parallel
from ..progress import Progress, quiet
from .network import FAST_RETRY, MAIL_DOMAINS
from .peers import SINK_HOST, SubmitResult, Zone, start_peer, submit_from
from .sink import Sink, SinkMessage

PROD_SUBNET, PUBLISH_SUBNET = "10.5.5.0/24", "192.168.251.0/24"
DNS_IP, SINK_IP, SLOW_SINK_IP, APP_IP = "10.5.5.53", "10.5.5.25", "10.5.5.26", "10.5.5.100"
#: Mail to this domain waits in the queue until the slow MX is started.
SLOW_DOMAIN, SLOW_HOST = "slow.example", "mx2.sink.test"
PRODUCTION_PORT, PARALLEL_PORT = 1587, 1588
SERVICE = "smtp-out"

COMPOSE_FILE = """\
version: "2.4"
services:
  {service}:
    container_name: {container}
    hostname: smtp-out
    image: {repo}
    restart: always
    ports: ['127.0.0.1:{port}:587']
    volumes:
      - {keys}:/etc/opendkim/keys
      - ${{POSTFIX_DIR_ROOT?}}:/var/spool/postfix
      - {cert}:/etc/postfix/cert/smtp.cert:ro
      - {key}:/etc/postfix/cert/smtp.key:ro
    environment:
      TZ: UTC
{environment}
    dns: [{dns}]
    sysctls:
      net.ipv6.conf.all.disable_ipv6: 1
      net.ipv6.conf.default.disable_ipv6: 1
    logging:
      driver: json-file
      options: {{max-size: 10m}}
    labels:
      {label}: "1"
    networks:
      prod: {{}}
      publish: {{}}
networks:
  prod: {{external: true, name: {prod}}}
  publish: {{external: true, name: {publish}}}
"""


def zone(material: Material) -> Zone:
    """Every test mail domain -> the sink; slow.example -> the slow MX; the DKIM key in DNS."""
    return Zone(
        hosts={SINK_HOST: (SINK_IP, None), SLOW_HOST: (SLOW_SINK_IP, None)},
        mx={**dict.fromkeys(MAIL_DOMAINS, SINK_HOST), SLOW_DOMAIN: SLOW_HOST},
        txt={f"{DKIM_SELECTOR}._domainkey.{DKIM_DOMAIN}": material.dkim.txt_value},
    )


@dataclass
class Production:
    """The compose project running production."""

    folder: Path  # the compose project's directory: docker-compose.yml and .env
    project: str
    container: str  # container_name
    repo: str  # the compose file's `image:`
    queue: Path

    @property
    def service(self) -> ComposeService:
        return ComposeService(self.project, SERVICE, self.folder, (str(self.folder / "docker-compose.yml"),))

    def up(self) -> None:
        self.service.run("up", "-d")

    def wait_serving(self, client: docker.DockerClient, timeout: float = 60.0) -> Container:
        """Production serving: healthy where its image has a healthcheck, else greeting with 220."""
        container = client.containers.get(self.container)
        wait_serving(container, Target(port=PRODUCTION_PORT, health_timeout=timeout))
        return container

    def down(self) -> None:
        with contextlib.suppress(Exception):
            self.service.run("down", "-t", "5")


@dataclass
class RolloutNet:
    client: docker.DockerClient
    workdir: Path
    material: Material
    prod: str
    publish: str
    resolver: Container
    sink: Container
    slow_sink: Container
    app: Container

    @property
    def delivered(self) -> Sink:
        return Sink(self.workdir / "sink")

    @property
    def delivered_slowly(self) -> Sink:
        return Sink(self.workdir / "sink-slow")

    def production(self, repo: str, *, queue: Path | None = None) -> Production:
        """Write a compose project for production running `repo` and start it (docker-compose up -d)."""
        folder = self.workdir / unique("compose")
        folder.mkdir(parents=True)
        queue = queue or folder / "postfix-queue"
        queue.mkdir(parents=True, exist_ok=True)
        prod = Production(folder, folder.name.replace("-", ""), unique("smtp-out-prod"), repo, queue)
        env = "\n".join(f"      {k}: {v}" for k, v in FAST_RETRY.items())
        (folder / "docker-compose.yml").write_text(COMPOSE_FILE.format(
            service=SERVICE, container=prod.container, repo=repo, port=PRODUCTION_PORT,
            keys=self.material.keys_dir, cert=self.material.cert, key=self.material.cert_key,
            environment=env, dns=DNS_IP, label=LABEL, prod=self.prod, publish=self.publish,
        ))  # fmt: skip
        (folder / ".env").write_text(f"POSTFIX_DIR_ROOT={queue}\n")
        prod.up()
        return prod

    def submit(
        self, host: str, to: Sequence[str] | str, *, count: int = 1, extra: Sequence[str] = ()
    ) -> SubmitResult:
        """Submit from the app, to a relay by its name on the network (as the app does)."""
        return submit_from(self.app, host, to, count=count, extra=extra)

    def submit_paced(self, host: str, to: Sequence[str] | str, *, count: int, interval: float, run: str,
                     retry_for: float = 60.0) -> SubmitResult:  # fmt: skip
        """One message every `interval` s, each retried on 4xx and refused connections."""
        extra = ["--interval", str(interval), "--retry-for", str(retry_for), "--run", run]
        return submit_from(self.app, host, to, count=count, extra=extra)


def _publish_network(client: docker.DockerClient, name: str) -> str:
    ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=PUBLISH_SUBNET)])
    client.networks.create(
        name, driver="bridge", ipam=ipam, labels={LABEL: "1"},
        options={"com.docker.network.bridge.enable_ip_masquerade": "false"},
    )  # fmt: skip
    return name


@contextlib.contextmanager
def open_rollout_net(client: docker.DockerClient, workdir: Path) -> Iterator[RolloutNet]:
    """The networks, the resolver, both sinks (the slow one stopped) and the app."""
    workdir.mkdir(parents=True, exist_ok=True)
    material = Material.create(workdir / "material")
    for folder in ("sink", "sink-slow"):
        (workdir / folder).mkdir(exist_ok=True)
    prod = create_internal_network(client, unique("smtp-out-rollout"), PROD_SUBNET)
    publish = client.networks.get(_publish_network(client, unique("smtp-out-publish")))
    try:
        prod_name = str(prod.name)
        store = {"/material": str(material.root)}
        net = RolloutNet(
            client, workdir, material, prod_name, str(publish.name),
            resolver=start_peer(client, "smtp-out-resolver", prod_name, DNS_IP,
                                command=zone(material).dnsmasq_command(DNS_IP)),
            sink=start_peer(client, "smtp-out-sink", prod_name, SINK_IP, command=["python3", "/peer/sink.py"],
                            volumes={str(workdir / "sink"): {"bind": "/sink", "mode": "rw"}}),
            slow_sink=start_peer(client, "smtp-out-slow-sink", prod_name, SLOW_SINK_IP,
                                 command=["python3", "/peer/sink.py"],
                                 volumes={str(workdir / "sink-slow"): {"bind": "/sink", "mode": "rw"}}),
            app=start_peer(client, "smtp-out-app", prod_name, APP_IP, dns=[DNS_IP],
                           volumes={src: {"bind": dst, "mode": "ro"} for dst, src in store.items()}),
        )  # fmt: skip
        net.slow_sink.stop(timeout=1)
        yield net
    finally:
        remove_network(client, prod)
        remove_network(client, publish)


# --- images for the rollout ----------------------------------------------------------------

#: The spec's image as written: what production runs before the first rollout.
SPEC_IMAGE = ImageSpec("smtp-out-spec", Path(__file__).parent / "spec-image")


def build_spec_image(client: docker.DockerClient, tag: str, progress: Progress = quiet) -> str:
    """Build the spec's image (src/smtp_out/testing/spec-image) as `tag`; returns its full id."""
    return str(client.images.get(build(client, SPEC_IMAGE, progress, tag=tag)).id)


def variant(
    client: docker.DockerClient, tag: str, *, base: str = IMAGE, refuse_deferred: bool = False
) -> str:
    """An image FROM `base` that differs from it (another id): labelled `tag`; with
    `refuse_deferred`, one that is healthy on a fresh queue but exits on a queue holding mail (in
    any queue directory: where a message is at the moment of the switch depends on the retry
    timing and on the queue move), as a build that cannot read production's own queue would.
    Returns its id."""
    entrypoint = client.images.get(base).attrs["Config"]["Entrypoint"]
    dockerfile = f"FROM {base}\nLABEL smtp-out.test.variant={tag.replace(':', '-')}\n"
    files = {}
    if refuse_deferred:
        files["refuse.sh"] = (
            "#!/bin/bash\n"
            "q=/var/spool/postfix\n"
            'queued=$(find "$q/maildrop" "$q/incoming" "$q/active" "$q/deferred" "$q/hold" -type f'
            " 2>/dev/null | head -n 1)\n"
            'if [ -n "$queued" ]; then\n'
            '  echo "[smtp-out] ERROR: /var/spool/postfix: deferred mail in a format this build cannot read"'
            " >&2\n"
            "  exit 1\nfi\n"
            f'exec {" ".join(entrypoint)} "$@"\n'
        )
        dockerfile += "COPY refuse.sh /usr/local/bin/refuse-old-queue\n"  # mode 755 from the tar
        dockerfile += 'ENTRYPOINT ["/usr/local/bin/refuse-old-queue"]\n'
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in {"Dockerfile": dockerfile, **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    image, _ = client.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True, labels={LABEL: "1"})
    return str(image.id)


def deploy_parallel_beside(net: RolloutNet, prod: Production, name: str, image: str = IMAGE) -> None:
    """`deploy-parallel`: a parallel container `name` of `image` beside production, on 1588, checked
    against the run's CA and resolver (AssertionError with its output when it fails)."""
    outcome = deploy_parallel(
        net.client, production=prod.container, name=name, image=image, port=PARALLEL_PORT,
        ca=net.material.ca, resolver=DNS_IP, progress=quiet,
    )  # fmt: skip
    if outcome.exit_code:
        raise AssertionError(outcome.text())


def parallel_ready(net: RolloutNet, prod: Production, name: str, image: str = IMAGE) -> None:
    """A running parallel container `name` beside production: deployed again when none runs (a
    fault-matrix cell may have stopped it)."""
    try:
        if net.client.containers.get(name).status == "running":
            return
    except docker.errors.NotFound:
        pass
    deploy_parallel_beside(net, prod, name, image)


def tags_of(client: docker.DockerClient, repo: str) -> list[str]:
    """Every tag of the repository `repo` (not the other tags its images may carry)."""
    return [t for image in client.images.list(name=repo) for t in image.tags if t.rsplit(":", 1)[0] == repo]


def remove_tags(client: docker.DockerClient, repo: str, keep: tuple[str, ...] = ()) -> None:
    """Remove the tags of `repo` but `keep` (an image goes once nothing tags or uses it)."""
    for tag in tags_of(client, repo):
        if tag not in keep:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag)


# --- the fault matrix: a cutover cut at a step, then the one recovery command ---------------

#: The app's stream during a cell: one message every INTERVAL s, retried on 4xx for RETRY_FOR s.
CELL_COUNT, CELL_INTERVAL, CELL_RETRY_FOR = 40, 0.25, 90.0


class Stream:
    """The app's paced submissions by the service name, in a thread."""

    def __init__(self, net: RolloutNet, run: str, count: int = CELL_COUNT, interval: float = CELL_INTERVAL,
                 retry_for: float = CELL_RETRY_FOR) -> None:  # fmt: skip
        self.count, self.interval, self.retry_for = count, interval, retry_for
        self.result = SubmitResult(0, 0, [], [])
        self.thread = threading.Thread(target=self._send, args=(net, run), daemon=True)
        self.thread.start()

    def _send(self, net: RolloutNet, run: str) -> None:
        self.result = net.submit_paced("smtp-out", "reader@example.com", count=self.count,
                                       interval=self.interval, run=run, retry_for=self.retry_for)  # fmt: skip

    def finish(self) -> SubmitResult:
        self.thread.join(timeout=self.count * self.interval + self.retry_for + 60)
        if self.thread.is_alive():
            raise AssertionError("the app's submissions did not finish")
        return self.result


def run_of(raw: bytes) -> str:
    """The X-Test-Run header of a delivered message."""
    for line in raw.split(b"\n"):
        if line.lower().startswith(b"x-test-run:"):
            return line.split(b":", 1)[1].strip().decode()
    return ""


def leftovers(container: Container) -> list[str]:
    """What a rollout left in a relay: a drain, a quiesce, held mail (empty when at rest)."""
    _, text = exec_text(
        container,
        "postconf -h defer_transports 2>/dev/null; postconf -h smtpd_client_restrictions 2>/dev/null; "
        "postqueue -j 2>/dev/null",
    )
    lines = text.split("\n")
    found = []
    if lines[0].strip():
        found.append(f"drained ({lines[0].strip()})")
    if len(lines) > 1 and "defer" in lines[1]:
        found.append("quiesced")
    held = [ln for ln in lines[2:] if '"queue_name": "hold"' in ln]
    if held:
        found.append(f"{len(held)} held message(s)")
    return found


def cut_cutover(*, root: Path, production: str, parallel: str, parallel_port: int, ca: Path, step: int,
                how: str, steps: int) -> tuple[int, str, bool]:  # fmt: skip
    """`invoke cutover` cut at `step` (see `cut_task`)."""
    argv = ["cutover", "--production", production, "--parallel", parallel,
            "--parallel-port", str(parallel_port), "--ca", str(ca), "--resolver", DNS_IP]  # fmt: skip
    return cut_task(argv, root=root, marker=f"cutover [{step}/{steps}]", how=how)


def cut_task(args: Sequence[str], *, root: Path, marker: str, how: str) -> tuple[int, str, bool]:
    """`invoke ARGS` in a process group of its own, cut when a progress line starting with
    `marker` appears: SIGINT to the group (Ctrl-C, a dropped session) or SIGKILL to the task
    alone (an OOM kill). Returns its exit code, what it printed, and whether the line appeared."""
    argv = [sys.executable, "-m", "invoke", *args]
    proc = subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    assert proc.stdout is not None
    seen, lines = False, []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(marker) and not seen:
            seen = True
            if how == "SIGINT":
                os.killpg(proc.pid, signal.SIGINT)
            else:
                proc.kill()
    return proc.wait(timeout=300), "".join(lines), seen


def recover(*, root: Path, production: str, ca: Path) -> subprocess.CompletedProcess[str]:
    """The one recovery command: `invoke rollback`."""
    argv = [sys.executable, "-m", "invoke", "rollback", "--production", production, "--ca", str(ca),
            "--resolver", DNS_IP]  # fmt: skip
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=300, check=False)


@dataclass
class Cell:
    """One cell of the fault matrix, and what it showed."""

    step: int
    how: str
    task: str = "cutover"
    cut_code: int = 0
    cut_output: str = ""
    cut: bool = False  # the step's progress line appeared and the signal was sent
    recovery_code: int = -1
    recovery_output: str = ""
    image: str = ""  # the image production runs afterwards
    compose_noop: bool = False
    left: list[str] = field(default_factory=list)  # drain, quiesce, hold left in production or the parallel
    left_by_interrupt: list[str] = field(default_factory=list)  # what Ctrl-C did not undo (rollback cells)
    accepted: int = 0
    lost: int = 0
    duplicated: int = 0
    unsigned: int = 0
    seconds: float = 0.0

    @property
    def recovered(self) -> bool:
        return self.recovery_code == 0 and self.compose_noop and not self.left

    def problems(self, expected_image: str, count: int) -> list[str]:
        out = [] if self.cut else [f"the {self.task} never printed step {self.step}"]
        if self.recovery_code != 0:
            out.append(f"recovery exit {self.recovery_code}: {self.recovery_output[-1500:]}")
        if self.image != expected_image:
            out.append(f"production on {self.image[:19]}, not {expected_image[:19]}")
        if not self.compose_noop:
            out.append("docker-compose up -d changed production")
        out += [f"left behind: {x}" for x in self.left]
        out += [f"left behind by the interrupt itself: {x}" for x in self.left_by_interrupt]
        if self.accepted != count:
            out.append(f"{count - self.accepted} submission(s) never accepted")
        out += [f"{n} {what}" for n, what in ((self.lost, "lost"), (self.duplicated, "duplicated"),
                                              (self.unsigned, "unsigned")) if n]  # fmt: skip
        return out


def run_cell(net: RolloutNet, prod: Production, *, root: Path, parallel: str, step: int, how: str,
             steps: int, ready: Callable[[], None], task: str = "cutover") -> Cell:  # fmt: skip
    """Cut a cutover (or, with task="rollback", a rollback: `ready` then leaves production on the
    new image) at `step` by `how` under the app's stream, recover with `invoke rollback`, and look."""
    client = net.client
    started = time.monotonic()
    ready()
    cell, run = Cell(step, how, task), f"cell-{task}-{step}-{how}-{uuid.uuid4().hex[:6]}"
    stream = Stream(net, run)
    time.sleep(1.0)  # the stream is flowing when the cutover starts
    if task == "rollback":
        cell.cut_code, cell.cut_output, seen = cut_task(
            ["rollback", "--production", prod.container, "--ca", str(net.material.ca), "--resolver", DNS_IP],
            root=root, marker=f"rollback [{step}/{steps}]", how=how,
        )  # fmt: skip
    else:
        cell.cut_code, cell.cut_output, seen = cut_cutover(
            root=root, production=prod.container, parallel=parallel, parallel_port=PARALLEL_PORT,
            ca=net.material.ca, step=step, how=how, steps=steps,
        )  # fmt: skip
    cell.cut = seen
    if task == "rollback" and how == "SIGINT" and step < 4:
        # before the recreate, Ctrl-C itself undoes the rollback's drain and quiesce
        with contextlib.suppress(docker.errors.NotFound):
            cell.left_by_interrupt = leftovers(client.containers.get(prod.container))
    back = recover(root=root, production=prod.container, ca=net.material.ca)
    cell.recovery_code, cell.recovery_output = back.returncode, back.stdout + back.stderr
    result = stream.finish()
    c = client.containers.get(prod.container)
    cell.image = str(c.attrs["Image"])
    with contextlib.suppress(Exception):
        prod.up()
        cell.compose_noop = client.containers.get(prod.container).id == c.id
    for name in (prod.container, parallel):
        with contextlib.suppress(docker.errors.NotFound):
            relay = client.containers.get(name)
            if relay.status == "running":
                cell.left += [f"{name}: {x}" for x in leftovers(relay)]
    accepted = {int(r["seq"]) for r in result.results if r["code"] == 250}
    cell.accepted = len(accepted)

    def got() -> list[SinkMessage]:
        return [m for m in net.delivered.received() if run_of(m.raw) == run]

    deadline = time.monotonic() + 60
    while len(got()) < len(accepted) and time.monotonic() < deadline:
        time.sleep(0.2)
    msgs = got()
    seqs = [m.header_seq for m in msgs]
    cell.lost = len(accepted - set(s for s in seqs if s is not None))
    cell.duplicated = len(seqs) - len(set(seqs))
    txt = net.material.dkim.txt_value
    cell.unsigned = sum(1 for m in msgs if not verify(m.raw, txt))
    cell.seconds = time.monotonic() - started
    return cell
