"""The deliverability preflight end to end: a real relay (its certificate mounted from a certbot
layout, its DKIM key from a folder), the test resolver (dnsmasq) serving a zone where every check
passes, then one broken variant per check. Each variant fails its check naming the fix, and the
other checks still pass. One relay serves the whole module; a variant restarts only the resolver
(or rewrites a mounted file)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import trustme
from docker.models.containers import Container

from smtp_out.checks import Report, Verdict
from smtp_out.dkim import DKIM_DOMAIN, DkimKey
from smtp_out.engine.containers import exec_text, unique
from smtp_out.engine.polling import poll
from smtp_out.ops import preflight
from smtp_out.ops.dnslookup import Dns
from smtp_out.ops.launch import SmtpOutOptions, run_smtp_out, wait_for_banner
from smtp_out.ops.report import burnin
from smtp_out.testing.network import SINK_IP, TestNet
from smtp_out.testing.peers import Zone, start_peer
from tests.helpers import invoke

pytestmark = pytest.mark.docker

#: The relay's test address: what --ip names and the zone's SPF, PTR and A records point at.
RELAY_IP = "10.5.5.12"
#: The preflight's own resolver (the suite's, at .53, keeps serving the relay).
PREFLIGHT_DNS_IP = "10.5.5.54"
OTHER_IP = "10.5.5.99"
DOMAIN = DKIM_DOMAIN
DKIM_NAME = f"mail._domainkey.{DOMAIN}"


class Certbot:
    """Certificates laid out as certbot lays them out: archive/<name>/fullchainN.pem and
    privkeyN.pem, and live/<name>/ symlinks that a renewal moves to the next N."""

    def __init__(self, root: Path, ca: trustme.CA) -> None:
        self.root, self.ca, self.n = root, ca, 0
        (root / "archive" / DOMAIN).mkdir(parents=True)
        (root / "live" / DOMAIN).mkdir(parents=True)

    def live(self, what: str) -> Path:
        return self.root / "live" / DOMAIN / f"{what}.pem"

    def archive(self, what: str, n: int | None = None) -> Path:
        return self.root / "archive" / DOMAIN / f"{what}{n or self.n}.pem"

    def issue(self, days: float) -> tuple[bytes, bytes]:
        now = dt.datetime.now(dt.UTC)
        leaf = self.ca.issue_cert(DOMAIN, "smtp-out", not_before=now - dt.timedelta(days=1),
                                  not_after=now + dt.timedelta(days=days))  # fmt: skip
        return b"".join(b.bytes() for b in leaf.cert_chain_pems), leaf.private_key_pem.bytes()

    def renew(self, days: float = 90) -> None:
        """What `certbot renew` does: new files under archive/, then the live/ links moved."""
        self.n += 1
        chain, key = self.issue(days)
        self.archive("fullchain").write_bytes(chain)
        self.archive("privkey").write_bytes(key)
        self.archive("privkey").chmod(0o644)  # the relay reads it as root; tests run as root too
        for what in ("fullchain", "privkey"):
            tmp = self.live(what).with_suffix(".new")
            tmp.symlink_to(Path("../../archive") / DOMAIN / f"{what}{self.n}.pem")
            os.replace(tmp, self.live(what))

    def rewrite_in_place(self, days: float) -> None:
        """Overwrite the current files (same inodes: the container sees it), for the expiry variant."""
        chain, key = self.issue(days)
        with self.archive("fullchain").open("r+b") as f:
            f.truncate(0)
            f.write(chain)
        with self.archive("privkey").open("r+b") as f:
            f.truncate(0)
            f.write(key)


@dataclass
class Scene:
    client: docker.DockerClient
    net: TestNet
    workdir: Path
    certbot: Certbot
    ca_file: Path
    keys: Path
    key: DkimKey
    relay: Container | None = None
    resolver: Container | None = None

    def start_relay(self) -> Container:
        self.remove_relay()
        opts = SmtpOutOptions(
            name=unique("smtp-out-preflight"), network=self.net.prod, ipv4_address=RELAY_IP,
            spool=self.workdir / unique("spool"),
            extra_volumes={
                str(self.keys): {"bind": "/etc/opendkim/keys", "mode": "ro"},
                str(self.certbot.live("fullchain")): {"bind": "/etc/postfix/cert/smtp.cert", "mode": "ro"},
                str(self.certbot.live("privkey")): {"bind": "/etc/postfix/cert/smtp.key", "mode": "ro"},
                str(self.net.workdir / "resolv.conf"): {"bind": "/etc/resolv.conf", "mode": "ro"},
            },
        )  # fmt: skip
        self.relay = run_smtp_out(self.client, opts)
        wait_for_banner(self.relay, RELAY_IP, timeout=30)
        return self.relay

    def remove_relay(self) -> None:
        if self.relay is not None:
            with contextlib.suppress(docker.errors.APIError):
                self.relay.remove(force=True, v=True)
            self.relay = None

    @contextlib.contextmanager
    def serving(self, zone: Zone) -> Iterator[None]:
        """The preflight's resolver serving `zone` (a fresh dnsmasq: a restart is the reload)."""
        dnsmasq = start_peer(self.client, "smtp-out-preflight-dns", self.net.prod, PREFLIGHT_DNS_IP,
                             command=zone.dnsmasq_command(PREFLIGHT_DNS_IP))  # fmt: skip
        try:
            probe = Dns(PREFLIGHT_DNS_IP, timeout=0.5)
            poll(lambda: None if probe.lookup(DOMAIN, "SOA").error else True,
                 timeout=10, interval=0.05, seen=lambda: "the resolver does not answer")  # fmt: skip
            yield
        finally:
            dnsmasq.remove(force=True)

    def preflight(self, zone: Zone, from_domain: str | None = None) -> Report:
        assert self.relay is not None
        with self.serving(zone):
            return preflight.run(
                self.client, str(self.relay.name), RELAY_IP, resolver=PREFLIGHT_DNS_IP, host=RELAY_IP,
                port=587,
                cert_path=self.certbot.live("fullchain"), ca=self.ca_file, from_domain=from_domain,
            )  # fmt: skip


def good_zone(key: DkimKey, **changes: object) -> Zone:
    """Every check passes: SPF naming the relay's address, DMARC, PTR and forward records, MX,
    the DKIM key."""
    base: dict[str, object] = {
        "local": (DOMAIN, "10.in-addr.arpa", "other.test"),
        "hosts": {DOMAIN: (RELAY_IP, None), f"mx.{DOMAIN}": (SINK_IP, None)},
        "ptr": {RELAY_IP: DOMAIN},
        "mx": {DOMAIN: f"mx.{DOMAIN}"},
        "txt": {
            DOMAIN: f"v=spf1 ip4:{RELAY_IP} -all",
            DKIM_NAME: key.txt_value,
            f"_dmarc.{DOMAIN}": f"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@{DOMAIN}",
        },
    }
    return Zone(**{**base, **changes})  # type: ignore[arg-type]


def with_txt(zone: Zone, name: str, value: str | tuple[str, ...] | None) -> Zone:
    txt = {k: v for k, v in zone.txt.items() if k != name}
    if value is not None:
        txt[name] = value
    return Zone(zone.hosts, zone.mx, txt, zone.ptr, zone.local, zone.addresses)


@pytest.fixture(scope="module")
def scene(
    client: docker.DockerClient, suite_net: TestNet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    workdir = tmp_path_factory.mktemp("preflight")
    ca = trustme.CA(organization_name="smtp-out preflight test CA")
    ca_file = workdir / "ca.pem"
    ca_file.write_bytes(ca.cert_pem.bytes())
    certbot = Certbot(workdir / "letsencrypt", ca)
    certbot.renew()
    keys = workdir / "keys"
    shutil.copytree(suite_net.material.keys_dir, keys)
    s = Scene(client, suite_net, workdir, certbot, ca_file, keys, suite_net.material.dkim)
    s.start_relay()
    yield s
    s.remove_relay()


def failed(report: Report) -> list[str]:
    return [r.name for r in report.results if r.verdict is Verdict.FAIL]


def only_failure(report: Report, check: str, fix: str) -> None:
    """`check` alone fails (everything else passes), and its fix says `fix`."""
    bad = [r for r in report.results if r.verdict is Verdict.FAIL]
    assert [r.name for r in bad] == [next(r.name for r in report.results if r.name.startswith(check))], (
        report.text()
    )
    assert fix in bad[0].fix, report.text()
    others = [r.verdict for r in report.results if r.name != bad[0].name]
    assert set(others) <= {Verdict.PASS, Verdict.NA}, report.text()


def test_the_good_zone_passes_every_check(scene: Scene) -> None:
    report = scene.preflight(good_zone(scene.key))
    assert report.ok and {r.verdict for r in report.results} == {Verdict.PASS}, report.text()
    assert len(report.results) == 20


def test_the_task_prints_each_check_and_exits_0(scene: Scene) -> None:
    assert scene.relay is not None
    with scene.serving(good_zone(scene.key)):
        # 587 is read at the container's address (it publishes none), the certificate file from its mount
        done = invoke("preflight", "--ip", RELAY_IP, "--container", str(scene.relay.name), "--resolver",
                      PREFLIGHT_DNS_IP, "--ca", str(scene.ca_file), "--json")  # fmt: skip
        text = invoke("preflight", "--ip", RELAY_IP, "--container", str(scene.relay.name), "--resolver",
                      PREFLIGHT_DNS_IP, "--ca", str(scene.ca_file))  # fmt: skip
        broken = invoke("preflight", "--ip", "192.0.2.7", "--container", str(scene.relay.name), "--resolver",
                        PREFLIGHT_DNS_IP, "--ca", str(scene.ca_file))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True and data["failed"] == 0 and data["passed"] == 20
    assert text.returncode == 0 and text.stdout.count("PASS  ") == 20, text.stdout
    (scene.workdir / "preflight-pass.txt").write_text(text.stdout)  # the README's example
    assert broken.returncode == 1 and "fix: " in broken.stdout, broken.stdout
    (scene.workdir / "preflight-fail.txt").write_text(broken.stdout)
    print(f"\n{text.stdout}\n{broken.stdout}")


def test_the_report_shows_the_preflight_verdict_and_the_certificates_days(scene: Scene) -> None:
    assert scene.relay is not None
    with scene.serving(good_zone(scene.key)):
        outcome = burnin.run(scene.client, [str(scene.relay.name)], preflight_ip=RELAY_IP,
                             resolver=PREFLIGHT_DNS_IP, ca=scene.ca_file)  # fmt: skip
    assert f"{scene.relay.name}: deliverability preflight OK; certificate: " in outcome.text(), outcome.text()
    data = outcome.to_json()
    assert isinstance(data, dict)
    assert data["preflight"][0]["ok"] is True and "days left" in data["preflight"][0]["certificate"]


def test_spf_without_the_ip(scene: Scene) -> None:
    zone = with_txt(good_zone(scene.key), DOMAIN, "v=spf1 ip4:192.0.2.1 -all")
    only_failure(scene.preflight(zone), "SPF passes for", f'"v=spf1 ip4:192.0.2.1 ip4:{RELAY_IP} -all"')


def test_spf_over_the_lookup_limit(scene: Scene) -> None:
    zone = good_zone(scene.key)
    includes = " ".join(f"include:s{i}.{DOMAIN}" for i in range(11))
    txt = {**zone.txt, DOMAIN: f"v=spf1 ip4:{RELAY_IP} {includes} -all"}
    txt |= {f"s{i}.{DOMAIN}": f"v=spf1 ip4:192.0.2.{i + 1} -all" for i in range(11)}
    report = scene.preflight(good_zone(scene.key, txt=txt))
    only_failure(report, "SPF within 10 DNS lookups", "flatten the record")
    assert next(r for r in report.results if r.name.startswith("SPF within")).observed == "11 lookups"


def test_spf_plus_all(scene: Scene) -> None:
    zone = with_txt(good_zone(scene.key), DOMAIN, f"v=spf1 ip4:{RELAY_IP} +all")
    only_failure(scene.preflight(zone), "SPF has no +all", "with -all")


def test_no_dmarc(scene: Scene) -> None:
    report = scene.preflight(with_txt(good_zone(scene.key), f"_dmarc.{DOMAIN}", None))
    only_failure(report, "DMARC record for", f'publish TXT _dmarc.{DOMAIN}. "v=DMARC1; p=none;')
    dmarc = next(r for r in report.results if r.name.startswith("DMARC record for"))
    assert dmarc.observed == f"no TXT record at _dmarc.{DOMAIN} (NXDOMAIN)", "missing reads as missing"


def test_misaligned_dkim_domain(scene: Scene) -> None:
    strict = f"v=DMARC1; p=reject; adkim=s; rua=mailto:dmarc-reports@{DOMAIN}"
    zone = with_txt(good_zone(scene.key), f"_dmarc.{DOMAIN}", strict)
    only_failure(
        scene.preflight(zone, from_domain=f"news.{DOMAIN}"), f"DKIM d={DOMAIN} aligns", "set adkim=r"
    )


def test_ptr_missing(scene: Scene) -> None:
    zone = good_zone(scene.key, hosts={f"mx.{DOMAIN}": (SINK_IP, None)}, addresses={DOMAIN: RELAY_IP}, ptr={})
    report = scene.preflight(zone)
    only_failure(report, f"Reverse DNS: {RELAY_IP} has a PTR", f"PTR {DOMAIN}.")
    assert f"no PTR record at {RELAY_IP} (NXDOMAIN)" in report.text()


def test_ptr_not_forward_confirmed(scene: Scene) -> None:
    zone = good_zone(scene.key)
    zone = good_zone(scene.key, hosts={**zone.hosts, "mail.other.test": (OTHER_IP, None)},
                     ptr={RELAY_IP: "mail.other.test"})  # fmt: skip
    only_failure(
        scene.preflight(zone), "Reverse DNS: the PTR name resolves back", f"A mail.other.test. {RELAY_IP}"
    )


def test_a_second_dkim_record(scene: Scene) -> None:
    old = DkimKey.generate(2048)
    zone = with_txt(good_zone(scene.key), DKIM_NAME, (scene.key.txt_value, old.txt_value))
    only_failure(scene.preflight(zone), f"DKIM {DKIM_NAME} published once", "delete the other TXT records")


def test_dkim_testing_flag(scene: Scene) -> None:
    zone = with_txt(good_zone(scene.key), DKIM_NAME, scene.key.txt_value.replace("k=rsa;", "k=rsa; t=y;"))
    only_failure(
        scene.preflight(zone), "DKIM not in testing mode", f"remove t=y from the TXT record at {DKIM_NAME}"
    )


def test_a_1024_bit_key(scene: Scene) -> None:
    weak = DkimKey.generate(1024)
    private = scene.keys / f"{DOMAIN}.private"
    strong = private.read_bytes()
    private.write_bytes(weak.private_pem)  # the mounted folder: the container reads it at once
    try:
        report = scene.preflight(good_zone(weak))
    finally:
        private.write_bytes(strong)
    only_failure(report, "DKIM key 2048 bits or more", "--bits 2048")
    assert next(r for r in report.results if r.name.startswith("DKIM key 2048")).observed == "1024 bits"


def test_a_certificate_ten_days_from_expiry(scene: Scene) -> None:
    assert scene.relay is not None
    scene.certbot.rewrite_in_place(days=10)
    exec_text(scene.relay, "postfix reload")
    try:
        report = scene.preflight(good_zone(scene.key))
    finally:
        scene.certbot.rewrite_in_place(days=80)
        exec_text(scene.relay, "postfix reload")
    only_failure(report, "Certificate: at least 14 days left", "certbot renew")
    days = next(r for r in report.results if r.name.startswith("Certificate: at least")).observed
    assert days.startswith(("9 days left", "10 days left")), days


def test_a_renewed_certificate_not_yet_loaded_then_the_recreate_the_fix_names(scene: Scene) -> None:
    assert scene.relay is not None
    scene.certbot.renew()  # certbot writes fullchain2.pem and moves the live/ links
    exec_text(scene.relay, "postfix reload")  # what a deploy hook would do: changes nothing
    report = scene.preflight(good_zone(scene.key))
    only_failure(report, "Certificate served is the one the host file holds now", "recreate the container")
    assert "mount the directory" in report.failed[0].fix
    scene.start_relay()  # the fix: a new container mounts what live/ names now
    assert scene.preflight(good_zone(scene.key)).ok
