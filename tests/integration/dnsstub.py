"""A DNS server for tests: answers A queries for a few names, on 127.0.0.1, over UDP.

It stands in for the name that several gateways share in production (a headless Kubernetes
Service, a DNS round robin): one name, several addresses. Go's resolver (and so gRPC's ``dns``
resolver in the collector) can be sent to it with an endpoint such as
``dns://127.0.0.1:<port>/gateways.test:4317``.

    with DnsStub({"gateways.test": ["127.0.0.1", "127.0.0.2"]}) as dns:
        endpoint = f"dns://127.0.0.1:{dns.port}/gateways.test:4317"

Any other query (AAAA, TXT, unknown names) gets an empty NOERROR answer or NXDOMAIN.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType

_TYPE_A = 1
_CLASS_IN = 1


def _read_name(msg: bytes, pos: int) -> tuple[str, int]:
    labels: list[str] = []
    while True:
        n = msg[pos]
        pos += 1
        if n == 0:
            return ".".join(labels), pos
        labels.append(msg[pos : pos + n].decode("ascii"))
        pos += n


def answer(query: bytes, records: Mapping[str, Sequence[str]]) -> bytes:
    """The response to one DNS query message."""
    qid, _flags, qdcount = struct.unpack("!HHH", query[:6])
    name, end = _read_name(query, 12)
    qtype, _qclass = struct.unpack("!HH", query[end : end + 4])
    question = query[12 : end + 4]
    key = name.lower().rstrip(".")
    addresses = records.get(key)
    rcode = 0 if addresses is not None else 3  # NXDOMAIN for names we do not serve
    answers = b""
    count = 0
    if addresses and qtype == _TYPE_A and qdcount == 1:
        for addr in addresses:
            # name as a pointer to the question (offset 12), type A, class IN, TTL 1 s
            answers += struct.pack("!HHHIH", 0xC00C, _TYPE_A, _CLASS_IN, 1, 4)
            answers += socket.inet_aton(addr)
            count += 1
    flags = 0x8000 | 0x0400 | 0x0100 | 0x0080 | rcode  # response, authoritative, RD, RA
    return struct.pack("!HHHHHH", qid, flags, 1, count, 0, 0) + question + answers


class DnsStub:
    """Serves ``records`` (name -> IPv4 addresses; mutable while running) on 127.0.0.1."""

    def __init__(self, records: Mapping[str, Sequence[str]]) -> None:
        self.records = {k.lower(): list(v) for k, v in records.items()}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-stub", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self._sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._sock.sendto(answer(query, self.records), peer)
                self.queries += 1
            except (IndexError, struct.error, UnicodeDecodeError, OSError):
                continue  # a malformed query: no answer, as a real server may do

    def __enter__(self) -> DnsStub:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
