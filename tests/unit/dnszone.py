"""A tiny authoritative DNS server for unit tests: a zone in a dict, answered over UDP on
127.0.0.1 (dnspython builds and parses the messages). Names not in the zone get NXDOMAIN, a name
without the asked type an empty answer, and names listed in `servfail` a SERVFAIL (a DNS error)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def txt(value: str) -> str:
    """A TXT value in zone-file form, split into 255-byte strings as DNS requires."""
    parts = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)


@dataclass
class TestZone:
    """(name, type) -> record texts in zone-file form, e.g. ("x.test", "A"): ["10.0.0.1"]."""

    __test__ = False

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)

    def add(self, name: str, rtype: str, *values: str) -> TestZone:
        self.records.setdefault((name.lower().rstrip("."), rtype), []).extend(values)
        return self

    def names(self) -> set[str]:
        return {n for n, _ in self.records}

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        q = query.question[0]
        name = q.name.to_text(True).lower()
        rtype = dns.rdatatype.to_text(q.rdtype)
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        values = self.records.get((name, rtype))
        if values:
            response.answer.append(dns.rrset.from_text_list(q.name, 60, dns.rdataclass.IN, rtype, values))
        elif name not in self.names():
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response


@contextlib.contextmanager
def serving(zone: TestZone) -> Iterator[int]:
    """Serve `zone` on 127.0.0.1 in a thread; yields the UDP port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(Exception):
                sock.sendto(zone.answer(dns.message.from_wire(data)).to_wire(), peer)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        sock.close()


def zone_of(records: Mapping[tuple[str, str], Sequence[str]]) -> TestZone:
    zone = TestZone()
    for (name, rtype), values in records.items():
        zone.add(name, rtype, *values)
    return zone
