"""The preflight's checks against a real DNS zone served on 127.0.0.1 (no Docker): a zone where
every check passes, then one broken variant per check, each failing that check alone with its fix;
missing records read as missing, a DNS error as a DNS error with no fix."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from smtp_out.checks import Report, Result, Verdict
from smtp_out.dkim import DkimKey
from smtp_out.ops import preflight
from smtp_out.ops.dnslookup import Dns
from smtp_out.ops.preflight import CertFacts, RelayFacts

from .dnszone import TestZone, serving, txt

DOMAIN, IP, OTHER_IP = "feedsubscription.com", "10.5.5.10", "10.5.5.99"
KEY, WEAK = DkimKey.generate(2048), DkimKey.generate(1024)
MOUNTED = KEY.txt_value.split("p=", 1)[1]
DKIM_NAME = f"mail._domainkey.{DOMAIN}"
REVERSE = "10.5.5.10.in-addr.arpa"


def good_zone() -> TestZone:
    zone = TestZone()
    zone.add(DOMAIN, "A", IP).add(DOMAIN, "MX", f"10 mx.{DOMAIN}.").add(f"mx.{DOMAIN}", "A", "10.5.5.25")
    zone.add(DOMAIN, "TXT", txt(f"v=spf1 ip4:{IP} -all"), txt("google-site-verification=abc"))
    zone.add(DKIM_NAME, "TXT", txt(KEY.txt_value))
    zone.add(f"_dmarc.{DOMAIN}", "TXT", txt(f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{DOMAIN}"))
    zone.add(REVERSE, "PTR", f"{DOMAIN}.")
    return zone


def leaf(days: float) -> bytes:
    ca = trustme.CA()
    now = dt.datetime.now(dt.UTC)
    cert = ca.issue_cert(
        DOMAIN, not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=days)
    )
    return x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).public_bytes(Encoding.DER)


SERVED = leaf(80)


def cert(served: bytes = SERVED, file: bytes = SERVED, verify_error: str = "") -> CertFacts:
    return CertFacts("127.0.0.1", 1587, DOMAIN, served, "", verify_error, "/certs/live/fullchain.pem", file)


def run(zone: TestZone, *, relay: RelayFacts | None = None, cert_facts: CertFacts | None = None,
        **kw: str) -> Report:  # fmt: skip
    relay = relay or RelayFacts(DOMAIN, DOMAIN, MOUNTED)
    with serving(zone) as port:
        dns_ = Dns("127.0.0.1", port=port, timeout=2.0)
        preflight._fresh_checkdmarc_cache()
        facts = preflight.gather(dns_, relay, IP, cert_facts or cert(), **kw)
    return preflight.judge(facts)


def failed(report: Report) -> list[str]:
    return [r.name for r in report.results if r.verdict is Verdict.FAIL]


def result(report: Report, start: str) -> Result:
    return next(r for r in report.results if r.name.startswith(start))


def test_the_good_zone_passes_every_check() -> None:
    report = run(good_zone())
    assert report.ok, report.text()
    assert {r.verdict for r in report.results} == {Verdict.PASS}
    assert len(report.results) == 20


def replace(zone: TestZone, name: str, rtype: str, *values: str) -> TestZone:
    zone.records.pop((name, rtype), None)
    if values:
        zone.add(name, rtype, *values)
    return zone


def _over_limit(zone: TestZone) -> TestZone:
    includes = " ".join(f"include:s{i}.{DOMAIN}" for i in range(11))
    for i in range(11):
        zone.add(f"s{i}.{DOMAIN}", "TXT", txt(f"v=spf1 ip4:192.0.2.{i + 1} -all"))
    return replace(zone, DOMAIN, "TXT", txt(f"v=spf1 ip4:{IP} {includes} -all"))


Variant = Callable[[TestZone], TestZone]
VARIANTS: dict[str, tuple[Variant, str, str]] = {
    # variant: (change to the good zone, the one check that fails, words its fix must say)
    "spf without the ip": (
        lambda z: replace(z, DOMAIN, "TXT", txt("v=spf1 ip4:192.0.2.1 -all")),
        "SPF passes for", f'"v=spf1 ip4:192.0.2.1 ip4:{IP} -all"',
    ),
    "spf over the lookup limit": (
        _over_limit, "SPF within 10 DNS lookups", "flatten",
    ),
    "spf +all": (
        lambda z: replace(z, DOMAIN, "TXT", txt(f"v=spf1 ip4:{IP} +all")), "SPF has no +all", "-all",
    ),
    "no dmarc": (
        lambda z: replace(z, f"_dmarc.{DOMAIN}", "TXT"), "DMARC record for",
        f'TXT _dmarc.{DOMAIN}. "v=DMARC1; p=none',
    ),
    "dmarc without a policy": (
        lambda z: replace(z, f"_dmarc.{DOMAIN}", "TXT", txt("v=DMARC1; p=bogus")), "DMARC record for", "",
    ),
    "ptr not forward-confirmed": (
        lambda z: replace(z, REVERSE, "PTR", "mail.other.test.").add("mail.other.test", "A", OTHER_IP),
        "Reverse DNS: the PTR name resolves back", f"publish A mail.other.test. {IP}",
    ),
    "ptr missing": (
        lambda z: replace(z, REVERSE, "PTR"), "Reverse DNS: 10.5.5.10 has a PTR", f"{REVERSE}. PTR {DOMAIN}.",
    ),
    "helo name elsewhere": (
        lambda z: replace(replace(z, DOMAIN, "A", OTHER_IP), REVERSE, "PTR", f"mail.{DOMAIN}.")
        .add(f"mail.{DOMAIN}", "A", IP),
        "HELO name", f"POSTFIX_smtp_helo_name to a name that resolves to {IP} (the PTR name, mail.{DOMAIN})",
    ),
    "no mx": (lambda z: replace(z, DOMAIN, "MX"), "MX for", "publish MX"),
    "null mx": (lambda z: replace(z, DOMAIN, "MX", "0 ."), "MX for", "publish MX"),
    "a second dkim record": (
        lambda z: z.add(DKIM_NAME, "TXT", txt(WEAK.txt_value)), "DKIM mail._domainkey", "delete the other",
    ),
    "t=y": (
        lambda z: replace(z, DKIM_NAME, "TXT", txt(KEY.txt_value.replace("k=rsa;", "k=rsa; t=y;"))),
        "DKIM not in testing mode", "remove t=y",
    ),
    "dkim record that does not parse": (
        lambda z: replace(z, DKIM_NAME, "TXT", txt("v=DKIM1; k=rsa; p=AAAA")), "DKIM record parses", "",
    ),
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_broken_variant_fails_its_check_alone_naming_the_fix(variant: str) -> None:
    change, check, fix = VARIANTS[variant]
    report = run(change(good_zone()))
    assert failed(report) == [result(report, check).name], report.text()
    assert fix in result(report, check).fix, report.text()
    if variant == "dkim record that does not parse":  # the checks that need a key cannot judge one
        assert [r.verdict for r in report.results[2:5]] == [Verdict.NA] * 3


def test_a_1024_bit_key_published_and_mounted_fails_only_the_key_size() -> None:
    weak_mounted = WEAK.txt_value.split("p=", 1)[1]
    zone = replace(good_zone(), DKIM_NAME, "TXT", txt(WEAK.txt_value))
    report = run(zone, relay=RelayFacts(DOMAIN, DOMAIN, weak_mounted))
    assert failed(report) == ["DKIM key 2048 bits or more"], report.text()
    assert result(report, "DKIM key 2048").observed == "1024 bits"
    assert "--bits 2048" in result(report, "DKIM key 2048").fix
    only_published = run(zone)  # the mounted key is another (2048-bit) one: both checks see it
    assert failed(only_published) == [
        "DKIM key is the public half of the mounted key",
        "DKIM key 2048 bits or more",
    ]


def test_misaligned_under_strict_adkim_fails_alignment_and_says_relax_it() -> None:
    zone = replace(
        good_zone(), f"_dmarc.{DOMAIN}", "TXT", txt("v=DMARC1; p=reject; adkim=s; rua=mailto:d@" + DOMAIN)
    )
    report = run(zone, from_domain=f"news.{DOMAIN}")
    assert failed(report) == [f"DKIM d={DOMAIN} aligns with From: news.{DOMAIN} (adkim=s)"], report.text()
    assert "set adkim=r" in result(report, "DKIM d=").fix
    relaxed = run(good_zone(), from_domain=f"news.{DOMAIN}")  # found at the organisational domain
    assert relaxed.ok, relaxed.text()


def test_no_report_address_is_a_warning_not_a_red_flag() -> None:
    report = run(replace(good_zone(), f"_dmarc.{DOMAIN}", "TXT", txt("v=DMARC1; p=none")))
    assert report.ok and report.exit_code == 0
    rua = result(report, "DMARC report address")
    assert rua.verdict is Verdict.WARN and f"rua=mailto:dmarc-reports@{DOMAIN}" in rua.fix
    assert "WARN  DMARC report address" in report.text()


def test_missing_records_read_as_missing_and_dns_errors_as_dns_errors_without_a_fix() -> None:
    zone = replace(replace(good_zone(), DKIM_NAME, "TXT"), REVERSE, "PTR")
    report = run(zone)
    assert result(report, "DKIM mail").observed == f"no TXT record at {DKIM_NAME} (NXDOMAIN)"
    assert result(report, "Reverse DNS: 10.5.5.10").observed == f"no PTR record at {IP} (NXDOMAIN)"
    assert result(report, "DKIM mail").fix.startswith(f"publish one TXT record {DKIM_NAME}.")
    broken = good_zone()
    broken.servfail |= {DKIM_NAME, f"_dmarc.{DOMAIN}", DOMAIN}
    report = run(broken)
    for name in ("DKIM mail", "DMARC record for", "SPF one record", "HELO name", "MX for"):
        r = result(report, name)
        assert r.verdict is Verdict.FAIL and r.observed.startswith("DNS error looking up"), r
        assert r.fix == "", r


def test_spf_evaluation_follows_includes_through_the_given_resolver() -> None:
    zone = replace(good_zone(), DOMAIN, "TXT", txt(f"v=spf1 include:_spf.{DOMAIN} -all"))
    zone.add(f"_spf.{DOMAIN}", "TXT", txt("v=spf1 ip4:10.5.5.0/24 -all"))
    report = run(zone)
    assert report.ok, report.text()
    assert result(report, "SPF within").verdict is Verdict.PASS


def test_two_spf_records_fail_one_record_and_the_rest_do_not_apply() -> None:
    report = run(good_zone().add(DOMAIN, "TXT", txt("v=spf1 -all")))
    assert failed(report) == [f"SPF one record at {DOMAIN}"]
    assert "merge the 2" in result(report, "SPF one record").fix
    assert result(report, "SPF passes").verdict is Verdict.NA


def test_certificate_ten_days_from_expiry_is_a_red_flag() -> None:
    soon = leaf(10)
    report = run(good_zone(), cert_facts=cert(soon, soon))
    assert failed(report) == ["Certificate: at least 14 days left"], report.text()
    assert result(report, "Certificate: at least").observed.startswith("10 days left")
    assert "certbot renew" in result(report, "Certificate: at least").fix


def test_a_renewed_certificate_not_yet_loaded_says_recreate_or_mount_the_directory() -> None:
    report = run(good_zone(), cert_facts=cert(SERVED, leaf(90)))
    assert failed(report) == ["Certificate served is the one the host file holds now"], report.text()
    fix = result(report, "Certificate served").fix
    assert "recreate the container" in fix and "mount the directory" in fix


def test_a_chain_that_does_not_validate_fails_with_the_reason() -> None:
    report = run(
        good_zone(), cert_facts=cert(verify_error="Hostname mismatch, certificate is not valid for 'x'")
    )
    assert failed(report) == [f"Certificate on 1587: the chain validates for {DOMAIN}"]
    assert "Hostname mismatch" in result(report, "Certificate on").observed


def test_alignment_modes() -> None:
    assert preflight.aligned(DOMAIN, f"news.{DOMAIN}", "r")
    assert not preflight.aligned(DOMAIN, f"news.{DOMAIN}", "s")
    assert preflight.aligned(DOMAIN, DOMAIN.upper(), "s")
    assert not preflight.aligned(DOMAIN, "example.org", "r")
    assert preflight.aligned("a.example.co.uk", "b.example.co.uk", "r")
    assert not preflight.aligned("a.co.uk", "b.co.uk", "r")


def test_json_carries_each_verdict_and_fix() -> None:
    report = run(replace(good_zone(), DOMAIN, "TXT", txt(f"v=spf1 ip4:{IP} +all")))
    checks = report.to_json()["checks"]
    assert isinstance(checks, list)
    bad = [c for c in checks if c["verdict"] == "FAIL"]
    assert len(bad) == 1 and "fix" in bad[0] and bad[0]["name"] == "SPF has no +all"


class _Container:
    def __init__(self, ports: dict[str, object], networks: dict[str, object]) -> None:
        self.name = "smtp-out"
        self.attrs = {"NetworkSettings": {"Ports": ports, "Networks": networks}}


def test_the_certificate_is_read_where_the_container_publishes_587() -> None:
    published = _Container({"587/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1587"}]}, {})
    assert preflight._submission_address(published, None, None) == ("127.0.0.1", 1587)  # type: ignore[arg-type]
    anywhere = _Container({"587/tcp": [{"HostIp": "0.0.0.0", "HostPort": "1588"}]}, {})
    assert preflight._submission_address(anywhere, None, None) == ("127.0.0.1", 1588)  # type: ignore[arg-type]
    unpublished = _Container({"587/tcp": None}, {"prod": {"IPAddress": "10.5.5.12"}})
    assert preflight._submission_address(unpublished, None, None) == ("10.5.5.12", 587)  # type: ignore[arg-type]
    assert preflight._submission_address(unpublished, "h", 25) == ("h", 25)  # type: ignore[arg-type]


def test_the_burn_in_report_shows_the_verdict_and_days_left_without_changing_its_exit_code() -> None:
    from smtp_out.ops.report.burnin import BurnInOutcome
    from smtp_out.ops.report.verdict import build_facts, judge

    good, bad = run(good_zone()), run(replace(good_zone(), DOMAIN, "MX"))
    assert preflight.summary_line(good).startswith("deliverability preflight OK; certificate: 80 days left")
    assert preflight.summary_line(bad).startswith(f"deliverability preflight 1 red flag(s): MX for {DOMAIN};")
    log = ["Dec  1 08:00:00 feedsubscription postfix/master[1]: daemon started"]
    facts = build_facts("smtp-out", "24h", log, "", 0.0)
    outcome = BurnInOutcome([(facts, judge(facts))], [bad])
    assert outcome.text().endswith(f"smtp-out: {preflight.summary_line(bad)}")
    data = outcome.to_json()
    assert isinstance(data, dict) and data["preflight"][0]["failed"] == [f"MX for {DOMAIN}"]
    assert outcome.exit_code == 0, "the preflight is a figure in the report, not a red flag"
