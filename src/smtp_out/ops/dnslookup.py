"""DNS for the preflight: one resolver (a given server, or the system's), answers that tell a
missing record (NXDOMAIN, or an empty answer) from a DNS error (timeout, SERVFAIL, REFUSED),
and the same resolver lent to the libraries that evaluate SPF (pyspf) and parse SPF and DMARC
records (checkdmarc), which would otherwise ask the system's resolver.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.rdatatype
import dns.resolver
import dns.reversename

#: pyspf reads its DNS through one module-level function; the lock keeps two evaluations in one
#: process (tests) from lending it two resolvers at once.
_PYSPF_LOCK = threading.Lock()


@dataclass(frozen=True)
class Answer:
    """What DNS said about one name and type: values, or nothing (missing), or a DNS error."""

    name: str
    rtype: str
    values: tuple[str, ...] = ()
    missing_as: str = ""  # "NXDOMAIN" or "empty answer" when missing
    error: str = ""  # a DNS error: neither a record nor its absence

    @property
    def missing(self) -> bool:
        return not self.values and not self.error

    def describe(self) -> str:
        """One phrase: the values, 'no <type> record at <name> (NXDOMAIN)', or the DNS error."""
        if self.error:
            return f"DNS error looking up {self.name} {self.rtype}: {self.error}"
        if self.missing:
            return f"no {self.rtype} record at {self.name} ({self.missing_as})"
        return "; ".join(self.values)


class Dns:
    """One resolver for every lookup of a run: `nameserver` (and `port`), or the system's."""

    def __init__(self, nameserver: str | None = None, port: int = 53, timeout: float = 5.0) -> None:
        res = dns.resolver.Resolver(configure=nameserver is None)
        if nameserver is not None:
            res.nameservers = [nameserver]
            res.port = port
        res.lifetime = timeout
        res.timeout = min(2.0, timeout)
        res.cache = None  # each run sees DNS as it is now
        self.resolver = res
        self.timeout = timeout

    def lookup(self, name: str, rtype: str) -> Answer:
        """TXT values (strings joined), A addresses, PTR and MX targets (no trailing dot)."""
        qname = dns.reversename.from_address(name) if rtype == "PTR" else name
        try:
            answer = self.resolver.resolve(qname, rtype, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(name, rtype, missing_as="NXDOMAIN")
        except dns.resolver.NoAnswer:
            return Answer(name, rtype, missing_as="empty answer")
        except dns.exception.DNSException as exc:
            return Answer(name, rtype, error=f"{type(exc).__name__}: {_brief(exc)}")
        values = [_text(rdata, rtype) for rdata in answer]
        return Answer(name, rtype, tuple(values))

    @contextlib.contextmanager
    def for_pyspf(self) -> Iterator[None]:
        """pyspf's DNS (its module-level DNSLookup) goes through this resolver meanwhile."""
        import spf  # pyspf

        with _PYSPF_LOCK:
            saved = spf.DNSLookup
            spf.DNSLookup = self._pyspf_lookup(spf.TempError)
            try:
                yield
            finally:
                spf.DNSLookup = saved

    def _pyspf_lookup(self, temp_error: Callable[[str], Exception]) -> Callable[..., list[Any]]:
        """pyspf's DNSLookup contract: [((name, type), value)]; missing is []; an error is TempError."""

        def lookup(name: str, qtype: str, strict: object = True, timeout: float = 20) -> list[Any]:
            try:
                answer = self.resolver.resolve(name, qtype, search=False, lifetime=self.timeout)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                return []
            except dns.exception.DNSException as exc:
                raise temp_error(f"DNS {type(exc).__name__}: {_brief(exc)}") from None
            out: list[Any] = []
            for rdata in answer:
                if qtype in ("A", "AAAA"):
                    out.append(((name, qtype), rdata.address))
                elif qtype == "MX":
                    out.append(((name, qtype), (rdata.preference, rdata.exchange)))
                elif qtype == "PTR":
                    out.append(((name, qtype), rdata.target.to_text(True)))
                elif qtype in ("TXT", "SPF"):
                    out.append(((name, qtype), rdata.strings))
            return out

        return lookup


def _text(rdata: Any, rtype: str) -> str:
    if rtype == "TXT":
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if rtype == "PTR":
        return str(rdata.target.to_text(True))
    if rtype == "MX":
        return f"{rdata.preference} {rdata.exchange.to_text(True) or '.'}"
    if rdata.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(rdata.address)
    return str(rdata.to_text())


def _brief(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
