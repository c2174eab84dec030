"""The deliverability preflight: the relay as the big mailbox providers see it.

What receivers check before they trust a sender (Gmail and Yahoo since 2024, Outlook.com since
2025), read from DNS through one resolver and from the relay itself, each check with the fix:

- DKIM: <selector>._domainkey.<domain> published once, parses (dkimpy), is the public half of the
  mounted key, 2048 bits or more, no testing flag;
- SPF for the envelope sender's domain: one record; `pass` for the relay's IP (pyspf evaluates
  it); within 10 DNS lookups and no +all (checkdmarc parses and counts);
- DMARC for the From: domain: exists and parses (checkdmarc), with a policy; the signing domain
  aligns under its adkim mode (organisational domains from checkdmarc's public suffix list);
  report addresses present (a warning);
- reverse DNS: a PTR for the IP, forward-confirmed, and the HELO name resolving to the IP;
- MX for the domain;
- the certificate on 587: validates for the relay's name, days left (a red flag under 14), and
  is the one the host's certificate file holds now.

Missing records read as missing (NXDOMAIN, an empty answer); a DNS error is named as such, with
no fix. Nothing here fetches over HTTPS or probes an MX: DNS, the relay's container, and one
STARTTLS handshake with the relay (two: one to read the certificate, one to validate it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from docker.models.containers import Container

from ..checks import Check, Report, Verdict, run_checks
from ..dkim import DKIM_SELECTOR, KeyRecord, check_domain, read_key_record
from ..engine.containers import run_sections
from ..errors import SmtpOutError, UsageError
from ..mail import Client
from .dnslookup import Answer, Dns

SPF_LOOKUP_LIMIT = 10
CERT_RED_FLAG_DAYS = 14
CERT_IN_CONTAINER = "/etc/postfix/cert/smtp.cert"
KEYS_IN_CONTAINER = "/etc/opendkim/keys"


class PreflightError(SmtpOutError):
    """The preflight could not start (no such container)."""


# --- facts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelayFacts:
    """What the relay's container says about itself."""

    domain: str  # myhostname: the DKIM signing domain
    helo: str  # smtp_helo_name, expanded: the name it greets receivers with
    mounted_public: str  # base64 DER of the mounted key's public half, or "" (see mounted_error)
    mounted_error: str = ""
    cert_source: str = ""  # the host path bind-mounted at /etc/postfix/cert/smtp.cert, if any


@dataclass(frozen=True)
class SpfFacts:
    domain: str
    answer: Answer
    records: tuple[str, ...]  # the v=spf1 TXT records among the answer
    result: str = ""  # pyspf: pass, fail, softfail, neutral, none, permerror, temperror
    explanation: str = ""
    lookups: int | None = None  # checkdmarc's count of DNS-querying terms, includes followed
    all_qualifier: str = ""  # checkdmarc: what `all` yields (pass for +all)
    parse_error: str = ""


@dataclass(frozen=True)
class DmarcFacts:
    from_domain: str
    answers: tuple[Answer, ...]  # _dmarc.<from domain>, then _dmarc.<organisational domain>
    location: str = ""  # the name the record was found at
    record: str = ""
    several: int = 0
    tags: dict[str, str] = field(default_factory=dict)  # checkdmarc's parse: tag -> value
    parse_error: str = ""
    org_from: str = ""
    org_signing: str = ""


@dataclass(frozen=True)
class CertFacts:
    host: str
    port: int
    name: str  # the name the certificate must carry
    served_der: bytes = b""
    error: str = ""  # could not connect or start TLS
    verify_error: str = ""  # "" when the chain validated for `name`
    file_path: str = ""
    file_der: bytes = b""
    file_error: str = ""

    @property
    def served(self) -> x509.Certificate | None:
        return x509.load_der_x509_certificate(self.served_der) if self.served_der else None

    def days_left(self, now: dt.datetime | None = None) -> float | None:
        cert = self.served
        if cert is None:
            return None
        now = now or dt.datetime.now(dt.UTC)
        return (cert.not_valid_after_utc - now).total_seconds() / 86400


@dataclass(frozen=True)
class Facts:
    ip: str
    selector: str
    relay: RelayFacts
    dkim: Answer
    spf: SpfFacts
    dmarc: DmarcFacts
    ptr: Answer
    ptr_forward: tuple[Answer, ...]  # A records of each PTR name
    helo: Answer  # A records of the HELO name
    mx: Answer
    cert: CertFacts
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def domain(self) -> str:
        return self.relay.domain

    @property
    def dkim_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def dkim_record(self) -> KeyRecord | str:
        """The key record the other DKIM checks judge (the one matching the mounted key when
        several are published, else the first), or why there is none to judge."""
        parsed: list[KeyRecord | str] = []
        for value in self.dkim.values:
            try:
                parsed.append(read_key_record(value, self.dkim_name))
            except ValueError as exc:
                parsed.append(f"does not parse: {exc}")
        for rec in parsed:
            if isinstance(rec, KeyRecord) and rec.public_b64 == self.relay.mounted_public:
                return rec
        return parsed[0] if parsed else self.dkim.describe()


# --- gathering ---------------------------------------------------------------------------


def relay_facts(container: Container) -> RelayFacts:
    """The signing domain, the HELO name and the mounted key's public half, in one exec."""
    key = f"{KEYS_IN_CONTAINER}/$(postconf -h myhostname).private"
    sections = run_sections(container, {
        "domain": "postconf -h myhostname",
        "helo": "postconf -xh smtp_helo_name",
        # pipefail: openssl's failure is the section's; the echo ends the line for run_sections
        "key": f"set -o pipefail; openssl pkey -in {key} -pubout -outform DER | base64 -w0; rc=$?; echo; "
        "exit $rc",
    })  # fmt: skip
    domain = sections["domain"].output.strip() if "domain" in sections else ""
    check_domain(domain, "the relay's myhostname")
    sec = sections.get("key")
    public = sec.output.strip() if sec is not None and sec.rc == 0 else ""
    why = (
        ""
        if public
        else f"cannot read {KEYS_IN_CONTAINER}/{domain}.private: {(sec.output if sec else '')[:120]}"
    )
    mounts = container.attrs.get("Mounts", [])
    source = next((str(m.get("Source", "")) for m in mounts if m.get("Destination") == CERT_IN_CONTAINER), "")
    helo = sections["helo"].output.strip() if "helo" in sections else ""
    return RelayFacts(domain, helo or domain, public, why.strip(), source)


def spf_facts(dns_: Dns, domain: str, ip: str, helo: str) -> SpfFacts:
    """The SPF record(s) at `domain`, pyspf's verdict for `ip`, and checkdmarc's lookup count."""
    answer = dns_.lookup(domain, "TXT")
    records = tuple(v for v in answer.values if v.lower() == "v=spf1" or v.lower().startswith("v=spf1 "))
    if len(records) != 1:
        return SpfFacts(domain, answer, records)
    import spf  # pyspf

    with dns_.for_pyspf():
        result, _code, explanation = spf.query(i=ip, s=f"postmaster@{domain}", h=helo).check()
    lookups, qualifier, error = None, "", ""
    try:
        import checkdmarc.spf

        parsed = checkdmarc.spf.parse_spf_record(
            records[0], domain, ignore_too_many_lookups=True, resolver=dns_.resolver,
            timeout=dns_.timeout, retries=0,
        )  # fmt: skip
        lookups, qualifier = int(parsed["dns_lookups"]), str(parsed["parsed"]["all"])
        if "error" in parsed:
            error = str(parsed["error"])
    except Exception as exc:  # checkdmarc's SPFError and the DNS errors it lets through
        error = f"{type(exc).__name__}: {exc}"
    return SpfFacts(domain, answer, records, str(result), str(explanation), lookups, qualifier, error)


def organisational(domain: str) -> str:
    """The organisational domain (public suffix list, as shipped with checkdmarc)."""
    from checkdmarc.utils import get_base_domain

    return str(get_base_domain(domain))


def dmarc_facts(dns_: Dns, from_domain: str, signing_domain: str) -> DmarcFacts:
    """DMARC policy discovery (RFC 7489 6.6.3): _dmarc.<From: domain>, else _dmarc.<its
    organisational domain>; the record parsed by checkdmarc."""
    org_from, org_signing = organisational(from_domain), organisational(signing_domain)
    answers: list[Answer] = []
    for domain in dict.fromkeys((from_domain, org_from)):
        answer = dns_.lookup(f"_dmarc.{domain}", "TXT")
        answers.append(answer)
        records = [v for v in answer.values if _is_dmarc(v)]
        if answer.error or records:
            break
    else:
        return DmarcFacts(from_domain, tuple(answers), org_from=org_from, org_signing=org_signing)
    if not records:
        return DmarcFacts(from_domain, tuple(answers), org_from=org_from, org_signing=org_signing)
    location = answer.name.removeprefix("_dmarc.")
    base = DmarcFacts(from_domain, tuple(answers), location, records[0], len(records),
                      org_from=org_from, org_signing=org_signing)  # fmt: skip
    try:
        import checkdmarc.dmarc

        parsed = checkdmarc.dmarc.parse_dmarc_record(
            records[0], location, resolver=dns_.resolver, timeout=dns_.timeout, retries=0
        )
    except Exception as exc:  # checkdmarc's DMARCError (syntax, tags, report URIs)
        return dataclasses.replace(base, parse_error=f"{type(exc).__name__}: {exc}")
    tags = {name: _tag_text(tag["value"]) for name, tag in parsed["tags"].items()}
    return dataclasses.replace(base, tags=tags)


def _is_dmarc(value: str) -> bool:
    head = value.split(";", 1)[0].replace(" ", "")
    return head.upper() == "V=DMARC1"


def _tag_text(value: object) -> str:
    if isinstance(value, list):
        return ",".join(f"{u.get('scheme', '')}:{u.get('address', '')}" for u in value if isinstance(u, dict))
    return str(value)


def cert_facts(
    host: str, port: int, name: str, *, cert_path: Path | None, ca: Path | None, timeout: float = 10.0
) -> CertFacts:
    """The certificate the relay serves on `port` after STARTTLS, whether it validates for `name`
    (against `ca`, or the system's CAs), and the certificate the host's file holds now."""
    served, error = b"", ""
    try:
        with Client(host, port, timeout, None) as smtp:
            smtp.starttls(context=_unverified())
            sock = smtp.sock
            served = sock.getpeercert(binary_form=True) or b"" if isinstance(sock, ssl.SSLSocket) else b""
    except (OSError, smtplib.SMTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"
    verify_error = ""
    if served:
        try:
            ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
            with Client(host, port, timeout, name) as smtp:
                smtp.starttls(context=ctx)
        except ssl.SSLCertVerificationError as exc:
            verify_error = exc.verify_message or str(exc)
        except (OSError, smtplib.SMTPException) as exc:
            verify_error = f"{type(exc).__name__}: {exc}"
    file_der, file_error = b"", ""
    if cert_path is not None:
        try:
            file_der = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(Encoding.DER)
        except (OSError, ValueError) as exc:
            file_error = f"cannot read {cert_path}: {exc}"
    path = str(cert_path) if cert_path else ""
    return CertFacts(host, port, name, served, error, verify_error, path, file_der, file_error)


def _unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def gather(
    dns_: Dns,
    relay: RelayFacts,
    ip: str,
    cert: CertFacts,
    *,
    envelope_domain: str | None = None,
    from_domain: str | None = None,
    selector: str = DKIM_SELECTOR,
) -> Facts:
    """Every DNS fact the checks judge, through one resolver."""
    domain = relay.domain
    ptr = dns_.lookup(ip, "PTR")
    return Facts(
        ip=ip,
        selector=selector,
        relay=relay,
        dkim=dns_.lookup(f"{selector}._domainkey.{domain}", "TXT"),
        spf=spf_facts(dns_, envelope_domain or domain, ip, relay.helo),
        dmarc=dmarc_facts(dns_, from_domain or domain, domain),
        ptr=ptr,
        ptr_forward=tuple(dns_.lookup(name, "A") for name in ptr.values),
        helo=dns_.lookup(relay.helo, "A"),
        mx=dns_.lookup(domain, "MX"),
        cert=cert,
    )


# --- the checks --------------------------------------------------------------------------


def _check(
    name: str,
    observed: str,
    ok: bool,
    expect: str,
    fix: str = "",
    *,
    skip: str | None = None,
    severity: Verdict = Verdict.FAIL,
) -> Check[Facts]:
    """A check judged from the facts: `observed` and whether it passes, the fix when it does not,
    `skip` the reason it does not apply."""
    applies = None if skip is None else (lambda _: skip)
    return Check(name, lambda _: observed, lambda _: ok, expect, fix, severity, applies)


def _dns_error(*answers: Answer) -> str:
    return next((a.describe() for a in answers if a.error), "")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _dkim_checks(f: Facts) -> list[Check[Facts]]:
    err = _dns_error(f.dkim)
    rec = f.dkim_record
    values = f.dkim.values
    publish = ""
    if f.relay.mounted_public:
        record = f"v=DKIM1; k=rsa; p={f.relay.mounted_public}"
        publish = f'publish one TXT record {f.dkim_name}. "{record}" (invoke dkim-key splits it for DNS)'
    once = err or (_count(len(values), "TXT record") if values else f.dkim.describe())
    if len(values) > 1:
        once_fix = f"delete the other TXT records at {f.dkim_name}, keep the key record (the mounted key's)"
    else:
        once_fix = "" if err else publish
    skip_parse = None if values else "nothing published"
    if isinstance(rec, KeyRecord):
        key, skip_key = rec, None
        mounted = f.relay.mounted_public or f.relay.mounted_error
        match = "match" if rec.public_b64 == f.relay.mounted_public else (
            f"published p={rec.public_b64[:24]}..., mounted {mounted[:40]}")  # fmt: skip
    else:
        key, skip_key, match = None, skip_parse or "no key record that parses", ""
    bits = key.bits if key else 0
    testing = f"t={key.tags.get('t')}" if key and key.testing else ""
    return [
        _check(f"DKIM {f.dkim_name} published once", once, once == "1 TXT record",
               "exactly one TXT record", once_fix),
        _check("DKIM record parses (dkimpy)", f"{key.key_type} key" if key else str(rec), key is not None,
               "a v=DKIM1 record dkimpy reads a key from", publish, skip=skip_parse),
        _check("DKIM key is the public half of the mounted key", match, match == "match",
               "the same public key", publish, skip=skip_key),
        _check("DKIM key 2048 bits or more", f"{bits} bits", bits >= 2048, ">= 2048 bits",
               f"generate a 2048-bit key (invoke dkim-key --domain {f.domain} --bits 2048), mount it and "
               "publish its record: receivers reject or ignore signatures with shorter keys", skip=skip_key),
        _check("DKIM not in testing mode (no t=y)", testing or "no t=y", not testing, "no y flag in t=",
               f"remove t=y from the TXT record at {f.dkim_name} (receivers may treat the signatures as "
               "none)", skip=skip_key),
    ]  # fmt: skip


def _with_ip(record: str, ip: str) -> str:
    """The SPF record with ip4:<ip> added before its `all` or redirect= term."""
    terms = record.split()
    ends = [i for i, t in enumerate(terms) if t.lstrip("+-~?").lower() == "all" or "redirect=" in t.lower()]
    at = ends[0] if ends else len(terms)
    return " ".join([*terms[:at], f"ip4:{ip}", *terms[at:]])


def _spf_checks(f: Facts) -> list[Check[Facts]]:
    s = f.spf
    err = _dns_error(s.answer)
    one = err or (_count(len(s.records), "v=spf1 record") if s.answer.values else s.answer.describe())
    skip = None if one == "1 v=spf1 record" else "no single SPF record"
    if err:
        one_fix = ""
    elif s.records:
        one_fix = f"merge the {len(s.records)} v=spf1 records at {s.domain} into one (several: permerror)"
    else:
        one_fix = f'publish one TXT record {s.domain}. "v=spf1 ip4:{f.ip} -all"'
    result = s.result + (f": {s.explanation}" if s.explanation and s.result != "pass" else "")
    add_ip = ""
    if s.records and s.result in ("fail", "softfail", "neutral", "none"):
        add_ip = f'add ip4:{f.ip} to the record at {s.domain}: "{_with_ip(s.records[0], f.ip)}"'
    lookups = _count(s.lookups, "lookup") if s.lookups is not None else s.parse_error or "not counted"
    within = s.lookups is not None and s.lookups <= SPF_LOOKUP_LIMIT
    all_q = f"all={s.all_qualifier}" if s.all_qualifier else s.parse_error or "not parsed"
    return [
        _check(f"SPF one record at {s.domain}", one, skip is None, "exactly one v=spf1 TXT record", one_fix),
        _check(f"SPF passes for {f.ip} (pyspf)", result, s.result == "pass", "pass", add_ip, skip=skip),
        _check(f"SPF within {SPF_LOOKUP_LIMIT} DNS lookups (checkdmarc)", lookups, within,
               f"<= {SPF_LOOKUP_LIMIT} terms that query DNS, includes followed",
               f"flatten the record at {s.domain}: replace include:, a and mx terms by the ip4:/ip6: ranges "
               f"they name until at most {SPF_LOOKUP_LIMIT} lookups remain (beyond: permerror)"
               if s.lookups is not None else "", skip=skip),
        _check("SPF has no +all", all_q, bool(s.all_qualifier) and s.all_qualifier != "pass",
               "-all or ~all", f"end the record at {s.domain} with -all (or ~all), not +all: +all lets any "
               "host pass SPF for your domain", skip=skip),
    ]  # fmt: skip


def aligned(signing: str, from_domain: str, adkim: str) -> bool:
    """DMARC DKIM alignment: strict is the same name; relaxed the same organisational domain."""
    if adkim == "s":
        return signing.lower().rstrip(".") == from_domain.lower().rstrip(".")
    return organisational(signing) == organisational(from_domain)


def _dmarc_checks(f: Facts) -> list[Check[Facts]]:
    d = f.dmarc
    err = _dns_error(*d.answers)
    found = bool(d.record) and not d.parse_error and d.several == 1
    if err:
        observed = err
    elif not d.record:
        observed = "; ".join(a.describe() for a in d.answers)
    elif d.several > 1:
        observed = f"{d.several} v=DMARC1 records at _dmarc.{d.location}"
    else:
        observed = f"does not parse: {d.parse_error}" if d.parse_error else f"at _dmarc.{d.location}"
    skip = None if found else "no DMARC record to judge"
    at = f"_dmarc.{d.location or d.org_from}"
    adkim = d.tags.get("adkim", "r")
    policy = d.tags.get("sp", d.tags.get("p", "")) if d.location != d.from_domain else d.tags.get("p", "")
    shown = f"p={d.tags.get('p', '')}" + (f", sp={d.tags['sp']}" if "sp" in d.tags else "")
    ok_align = aligned(f.domain, d.from_domain, adkim)
    if d.org_from == d.org_signing:
        align_fix = f"set adkim=r in {at} (then d={f.domain} covers {d.from_domain}), or From: @{f.domain}"
    else:
        align_fix = f"send From: an address at {f.domain} or a sub-domain (the relay signs d={f.domain})"
    rua = d.tags.get("rua", "")
    return [
        _check(f"DMARC record for {d.from_domain} exists and parses (checkdmarc)", observed, found,
               "one v=DMARC1 record that parses",
               "" if err else f'publish TXT _dmarc.{d.org_from}. "v=DMARC1; p=none; rua=mailto:dmarc-reports@'
               f'{d.org_from}" (p=none first; quarantine once the reports show only your own mail)'),
        _check("DMARC has a policy", f"{shown} (for {d.from_domain}: {policy or 'none'})",
               policy in ("none", "quarantine", "reject"), "p=none, quarantine or reject",
               f"add p=none (or quarantine, reject) to {at}", skip=skip),
        _check(f"DKIM d={f.domain} aligns with From: {d.from_domain} (adkim={adkim})",
               "aligned" if ok_align else f"not aligned: d={f.domain}, From: {d.from_domain}, adkim={adkim}",
               ok_align, "strict: the same domain; relaxed: the same organisational domain", align_fix,
               skip=skip),
        _check("DMARC report address (rua)", f"rua={rua}" if rua else "no rua", bool(rua),
               "rua=mailto:... (aggregate reports show who sends as you)",
               f"add rua=mailto:dmarc-reports@{d.org_from} to {at}", skip=skip, severity=Verdict.WARN),
    ]  # fmt: skip


def _rdns_checks(f: Facts) -> list[Check[Facts]]:
    ptr_err, forward_err, helo_err = _dns_error(f.ptr), _dns_error(*f.ptr_forward), _dns_error(f.helo)
    names = f.ptr.values
    confirmed = [n for n, a in zip(names, f.ptr_forward, strict=True) if f.ip in a.values]
    forward = forward_err or "; ".join(f"{a.name} -> {a.describe()}" for a in f.ptr_forward)
    helo_fix = f"publish A {f.relay.helo}. {f.ip}, or set POSTFIX_smtp_helo_name to a name that resolves to "
    helo_fix += f.ip
    if confirmed:
        helo_fix += f" (the PTR name, {confirmed[0]})"
    reverse = ipaddress.ip_address(f.ip).reverse_pointer
    helo = helo_err or f"{f.relay.helo} -> {f.helo.describe()}"
    return [
        _check(f"Reverse DNS: {f.ip} has a PTR", ptr_err or ", ".join(names) or f.ptr.describe(), bool(names),
               "a PTR record naming the relay",
               "" if ptr_err else f"ask whoever holds {f.ip} (the hosting provider) for {reverse}. PTR "
               f"{f.relay.helo}."),
        _check("Reverse DNS: the PTR name resolves back to the IP", forward, bool(confirmed),
               f"an A record of the PTR name listing {f.ip}",
               "" if forward_err or not names else
               f"publish A {names[0]}. {f.ip} (or point the PTR at a name whose A record is {f.ip})",
               skip=None if names else "no PTR name to confirm"),
        _check(f"HELO name {f.relay.helo} resolves to the IP", helo,
               f.ip in f.helo.values, f"an A record of the HELO name listing {f.ip}",
               "" if helo_err else helo_fix),
    ]  # fmt: skip


def _mx_checks(f: Facts) -> list[Check[Facts]]:
    err = _dns_error(f.mx)
    null = bool(f.mx.values) and all(v.split()[-1] == "." for v in f.mx.values)
    observed = err or ("null MX (accepts no mail)" if null else f.mx.describe())
    fix = f"publish MX {f.domain}. 10 <your inbound mail host>. (bounces and DMARC reports come back there)"
    return [
        _check(f"MX for {f.domain}", observed, bool(f.mx.values) and not null,
               "an MX record (bounces and DMARC reports need somewhere to go)", "" if err else fix),
    ]  # fmt: skip


def _describe_cert(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    return f"serial {cert.serial_number:x} (until {cert.not_valid_after_utc.date().isoformat()})"


def _cert_checks(f: Facts) -> list[Check[Facts]]:
    c = f.cert
    skip = None if c.served_der else f"no certificate served ({c.error})"
    valid = c.verify_error or ("valid" if c.served_der else c.error)
    days = c.days_left(f.now)
    expires = f"{c.served.not_valid_after_utc:%Y-%m-%d}" if c.served else ""
    left = f"{days:.0f} days left (expires {expires})" if days is not None else ""
    same = c.file_der == c.served_der
    if c.file_error:
        held = c.file_error
    else:
        held = "the same" if same else f"served {_describe_cert(c.served_der)}, {c.file_path} holds now " \
            f"{_describe_cert(c.file_der)}"  # fmt: skip
    reload_fix = (
        "the container bind-mounts the file it started with: certbot renewed by writing archive/ and moving "
        "the live/ symlink, so `postfix reload` reads the old one: recreate the container (a rollout: invoke "
        "deploy-parallel, then invoke cutover), or mount the directory (/etc/letsencrypt, read-only) rather "
        "than the file"
    )
    no_path = None if c.file_path else "no host certificate path known (--cert-path)"
    return [
        _check(f"Certificate on {c.port}: the chain validates for {c.name}", valid, valid == "valid",
               f"a chain to a trusted CA, naming {c.name}",
               f"mount the full chain (fullchain.pem, not cert.pem) of a certificate issued for {c.name}"
               if c.served_der else ""),
        _check(f"Certificate: at least {CERT_RED_FLAG_DAYS} days left", left,
               days is not None and days >= CERT_RED_FLAG_DAYS, f">= {CERT_RED_FLAG_DAYS} days",
               "renew it (certbot renew), then recreate the relay so it loads the new file (a rollout: "
               "invoke deploy-parallel, then invoke cutover)", skip=skip),
        _check("Certificate served is the one the host file holds now", held, held == "the same",
               f"the certificate in {c.file_path or 'the host file'}", "" if c.file_error else reload_fix,
               skip=skip or no_path),
    ]  # fmt: skip


def checks(facts: Facts) -> tuple[Check[Facts], ...]:
    """The preflight's checks, their fixes worked out from the facts (none after a DNS error)."""
    return (*_dkim_checks(facts), *_spf_checks(facts), *_dmarc_checks(facts), *_rdns_checks(facts),
            *_mx_checks(facts), *_cert_checks(facts))  # fmt: skip


def judge(facts: Facts, started: float | None = None) -> Report:
    title = f"SMTP-OUT DELIVERABILITY PREFLIGHT: {facts.domain} from {facts.ip}"
    return run_checks(title, checks(facts), facts, started)


# --- the task's entry point --------------------------------------------------------------


def check_ip(ip: str) -> str:
    try:
        return str(ipaddress.IPv4Address(ip))
    except ValueError:
        raise UsageError(f"--ip {ip!r} is not an IPv4 address (the relay's public address)") from None


def run(
    client: docker.DockerClient,
    container: str,
    ip: str,
    *,
    resolver: str | None = None,
    envelope_domain: str | None = None,
    from_domain: str | None = None,
    host: str | None = None,
    port: int | None = None,
    tls_name: str | None = None,
    cert_path: Path | None = None,
    ca: Path | None = None,
    selector: str = DKIM_SELECTOR,
) -> Report:
    """Run every check for the relay `container`, sending from `ip`. The certificate is read on
    host:port, by default where the container publishes 587."""
    started = time.monotonic()
    ip = check_ip(ip)
    if resolver is not None:
        check_ip_arg(resolver, "--resolver")
    try:
        relay_container = client.containers.get(container)
    except docker.errors.NotFound:
        raise PreflightError(
            f"no container named {container!r} (docker ps -a lists the containers)"
        ) from None
    relay = relay_facts(relay_container)
    for option, value in (("--envelope-domain", envelope_domain), ("--from-domain", from_domain)):
        if value is not None:
            check_domain(value, option)
    if from_domain is not None and not _within(from_domain, relay.domain):
        raise UsageError(f"--from-domain {from_domain}: the relay signs and accepts From: addresses at "
                         f"{relay.domain} or its sub-domains only")  # fmt: skip
    path = cert_path or (Path(relay.cert_source) if relay.cert_source else None)
    host, port = _submission_address(relay_container, host, port)
    cert = cert_facts(host, port, tls_name or relay.domain, cert_path=path, ca=ca)
    dns_ = Dns(resolver)
    _fresh_checkdmarc_cache()
    facts = gather(dns_, relay, ip, cert, envelope_domain=envelope_domain, from_domain=from_domain,
                   selector=selector)  # fmt: skip
    return judge(facts, started)


def _submission_address(container: Container, host: str | None, port: int | None) -> tuple[str, int]:
    """host:port given, else where the container publishes 587 (127.0.0.1:1587 for production),
    else 587 at the container's own address."""
    if host is not None and port is not None:
        return host, port
    settings = container.attrs.get("NetworkSettings", {})
    bindings = (settings.get("Ports") or {}).get("587/tcp") or []
    if bindings:
        address = str(bindings[0].get("HostIp") or "127.0.0.1")
        published = "127.0.0.1" if address in ("0.0.0.0", "::") else address
        return host or published, port or int(bindings[0]["HostPort"])
    own = [str(n["IPAddress"]) for n in (settings.get("Networks") or {}).values() if n.get("IPAddress")]
    if not own:
        raise UsageError(
            f"{container.name} publishes no port for 587 and has no address: give --host and --port"
        )
    return host or own[0], port or 587


def check_ip_arg(value: str, option: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise UsageError(f"{option} {value!r} is not an IP address") from None


def _within(domain: str, parent: str) -> bool:
    d, p = domain.lower().rstrip("."), parent.lower().rstrip(".")
    return d == p or d.endswith("." + p)


def _fresh_checkdmarc_cache() -> None:
    """checkdmarc caches answers per name in the process, whatever the resolver: start empty."""
    from checkdmarc import utils

    utils.DNS_CACHE.clear()


def _certificate_days(report: Report) -> str:
    return next((r.observed for r in report.results if r.name.startswith("Certificate: at least")), "")


def summary(report: Report) -> dict[str, object]:
    """The preflight's verdict and the certificate's days left, for the burn-in report."""
    warned = [r.name for r in report.results if r.verdict is Verdict.WARN]
    failed = [r.name for r in report.failed]
    return {"ok": report.ok, "failed": failed, "warned": warned, "certificate": _certificate_days(report)}


def summary_line(report: Report) -> str:
    """One line: the verdict, the red flags by name, the certificate's days left."""
    failed = [r.name for r in report.failed]
    warned = report.count(Verdict.WARN)
    verdict = "OK" if report.ok else f"{len(failed)} red flag(s): {'; '.join(failed)}"
    extra = f", {warned} warning(s)" if warned else ""
    return (
        f"deliverability preflight {verdict}{extra}; certificate: {_certificate_days(report) or 'not read'}"
    )


__all__: Sequence[str] = [
    "CertFacts", "DmarcFacts", "Facts", "RelayFacts", "SpfFacts", "aligned", "cert_facts", "checks",
    "gather", "judge", "relay_facts", "run", "summary",
]  # fmt: skip
