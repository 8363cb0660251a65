"""Does an OTLP receiver answer? A TCP connect, then an empty export, within a timeout.

Example:
    >>> from modelotel._probe import Target, probe
    >>> local = Target("traces", "http/protobuf", "http://127.0.0.1:4318/v1/traces", {})
    >>> local.address                               # signals with one address: one receiver
    ('http/protobuf', '127.0.0.1', 4318)
    >>> probe(local, timeout=1.0).status            # doctest: +SKIP
    'ok'

The endpoint checks of ``modelotel doctor`` (:mod:`modelotel._doctor` resolves the
:class:`Target` of each signal as ``configure()`` would). OTLP/HTTP: a POST of an empty
body to the signal's path; any 2xx or 4xx answer shows an HTTP receiver is there (401 /
403 / 404 / 405 / 5xx say what to check). OTLP/gRPC: an empty ``Export`` of the signal's
service. Refused, unresolved, silent (accepts and never answers), reset (the wrong protocol
for the port) and TLS failures are ``fail``; the whole check takes ``timeout`` at most
(short of a server that answers one byte at a time).
"""

from __future__ import annotations

import http.client
import importlib
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from modelotel import _exporters

OK, WARN, FAIL = "ok", "warn", "fail"
#: Seconds each endpoint check may take at most (``modelotel doctor --timeout``).
DEFAULT_TIMEOUT = 3.0


@dataclass
class Check:
    """The result of one check of ``modelotel doctor`` (these and :mod:`modelotel._doctor`'s):
    ``status``, a one-line ``summary``, details for people (``lines``) and machines (``data``)."""

    name: str
    status: str
    summary: str
    lines: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "summary": self.summary,
                "details": self.data}


@dataclass(frozen=True)
class Target:
    """Where one signal is exported: protocol, URL, and the request headers (for the probe)."""

    signal: str
    protocol: str
    url: str
    headers: dict[str, str]
    source: str = "default"
    certificate: str | None = None
    insecure: bool | None = None

    @property
    def address(self) -> tuple[str, str, int]:
        """``(protocol, host, port)``: the signals that share it share one receiver."""
        https = self.url.startswith("https")
        grpc = self.protocol == _exporters.GRPC
        host, port, _ = _host_port(self.url, 4317 if grpc else (443 if https else 80))
        return self.protocol, host, port


def _host_port(url: str, default_port: int) -> tuple[str, int, str]:
    parts = urlsplit(url if "://" in url else f"//{url}")
    return parts.hostname or "localhost", parts.port or default_port, parts.scheme


def _connect(host: str, port: int, timeout: float) -> tuple[socket.socket | None, str]:
    """A TCP connection, or None and why not (for people)."""
    try:
        return socket.create_connection((host, port), timeout=timeout), ""
    except TimeoutError:
        return None, (f"no answer to a TCP connect to {host}:{port} within {timeout:.1f} s "
                      "(a firewall dropping packets, or a wrong address)")
    except ConnectionRefusedError:
        return None, (f"connection refused by {host}:{port}: nothing listens there "
                      "(is the collector running, on this port?)")
    except socket.gaierror as exc:
        return None, f"cannot resolve {host!r}: {exc.strerror or exc}"
    except OSError as exc:
        return None, f"cannot connect to {host}:{port}: {exc.strerror or exc}"


def probe_http(target: Target, timeout: float) -> Check:
    """TCP connect, then an empty OTLP export (a POST of no data): 2xx or 4xx is an answer."""
    name = f"endpoint ({target.signal})"
    host, port, scheme = _host_port(target.url, 443 if target.url.startswith("https") else 80)
    end = time.monotonic() + timeout
    sock, why = _connect(host, port, timeout)
    if sock is None:
        return Check(name, FAIL, f"{target.url}: {why}", data={"url": target.url, "error": why})
    path = urlsplit(target.url).path or "/"
    conn: http.client.HTTPConnection
    try:
        if scheme == "https":
            try:
                context = ssl.create_default_context(cafile=target.certificate)
            except OSError as exc:  # the file named by OTEL_EXPORTER_OTLP_[<SIGNAL>_]CERTIFICATE
                why = f"cannot read the CA certificate {target.certificate!r}: {exc}"
                return Check(name, FAIL, f"{target.url}: {why}",
                             data={"url": target.url, "error": why})
            sock.settimeout(max(0.01, end - time.monotonic()))
            sock = context.wrap_socket(sock, server_hostname=host)  # the TLS handshake
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock
        sock.settimeout(max(0.01, end - time.monotonic()))
        conn.request("POST", path, body=b"", headers={
            **target.headers, "Content-Type": "application/x-protobuf", "Content-Length": "0"})
        answer = conn.getresponse()
        code = answer.status
        answer.read(4096)
    except TimeoutError:
        why = (f"{host}:{port} accepts connections but did not answer an empty export within "
               f"{timeout:.1f} s (not an OTLP/HTTP receiver? a proxy that hangs?)")
        return Check(name, FAIL, f"{target.url}: {why}", data={"url": target.url, "error": why})
    except (ConnectionResetError, http.client.RemoteDisconnected, http.client.BadStatusLine):
        why = (f"{host}:{port} closed the connection without an HTTP answer: not an OTLP/HTTP "
               "receiver (an OTLP/gRPC port? their defaults: gRPC 4317, HTTP 4318)")
        return Check(name, FAIL, f"{target.url}: {why}", data={"url": target.url, "error": why})
    except (OSError, http.client.HTTPException) as exc:  # TLS errors are OSErrors too
        why = f"{type(exc).__name__}: {exc}"
        return Check(name, FAIL, f"{target.url}: {why}", data={"url": target.url, "error": why})
    finally:
        sock.close()
    data = {"url": target.url, "http_status": code}
    if 200 <= code < 300:
        return Check(name, OK, f"{target.url} answered {code} to an empty export", data=data)
    hint = {401: "check the headers (OTEL_EXPORTER_OTLP_HEADERS): credentials refused",
            403: "check the headers (OTEL_EXPORTER_OTLP_HEADERS): credentials refused",
            404: f"nothing serves {path} there: check the endpoint's path and port",
            405: f"nothing serves {path} there: check the endpoint's path and port"}.get(code)
    if hint is None and code < 500:  # an OTLP receiver may refuse an empty body: it answered
        return Check(name, OK, f"{target.url} is reachable (answered {code})", data=data)
    return Check(name, WARN, f"{target.url} answered {code}: {hint or 'a server error'}",
                 data=data)


def probe_grpc(target: Target, timeout: float) -> Check:
    """TCP connect, then an empty OTLP/gRPC ``Export`` of the signal's service."""
    name = f"endpoint ({target.signal})"
    host, port, scheme = _host_port(target.url, 4317)
    end = time.monotonic() + timeout
    sock, why = _connect(host, port, timeout)
    if sock is None:
        return Check(name, FAIL, f"{target.url}: {why}", data={"url": target.url, "error": why})
    sock.close()
    try:
        grpc: Any = importlib.import_module("grpc")
    except ImportError:
        return Check(name, OK, f"{host}:{port} accepts TCP connections (grpcio is not "
                     "installed: the gRPC exporter cannot be used)", data={"url": target.url})
    insecure = target.insecure if target.insecure is not None else scheme != "https"
    if scheme == "https":
        insecure = False
    if insecure:
        channel = grpc.insecure_channel(f"{host}:{port}")
    else:
        roots = None
        if target.certificate:
            try:
                with open(target.certificate, "rb") as fh:
                    roots = fh.read()
            except OSError as exc:
                why = f"cannot read the CA certificate {target.certificate!r}: {exc}"
                return Check(name, FAIL, f"{target.url}: {why}",
                             data={"url": target.url, "error": why})
        channel = grpc.secure_channel(f"{host}:{port}", grpc.ssl_channel_credentials(roots))
    stub, request = _grpc_export(target.signal, channel)
    try:
        stub.Export(request, timeout=max(0.01, end - time.monotonic()),
                    metadata=tuple(target.headers.items()))
    except grpc.RpcError as exc:
        code = exc.code()
        data = {"url": target.url, "grpc_status": code.name}
        if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
            why = (f"{host}:{port} accepts connections but gave no OTLP/gRPC answer within "
                   f"{timeout:.1f} s ({code.name}): not an OTLP/gRPC receiver (an OTLP/HTTP "
                   "port? their defaults: gRPC 4317, HTTP 4318), or a TLS mismatch")
            return Check(name, FAIL, f"{target.url}: {why}", data={**data, "error": why})
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            hint = "check the headers (OTEL_EXPORTER_OTLP_HEADERS): credentials refused"
        elif code == grpc.StatusCode.UNIMPLEMENTED:
            hint = f"it does not take {target.signal} (no {target.signal} pipeline?)"
        else:
            hint = exc.details() or code.name
        return Check(name, WARN, f"{target.url} answered {code.name}: {hint}", data=data)
    finally:
        channel.close()
    return Check(name, OK, f"{target.url} accepted an empty export (gRPC)",
                 data={"url": target.url, "grpc_status": "OK"})


#: Per signal: the OTLP service's protobuf module, its request and its stub.
_GRPC_SERVICES = {
    "traces": ("opentelemetry.proto.collector.trace.v1.trace_service_pb2",
               "ExportTraceServiceRequest", "TraceServiceStub"),
    "metrics": ("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
                "ExportMetricsServiceRequest", "MetricsServiceStub"),
    "logs": ("opentelemetry.proto.collector.logs.v1.logs_service_pb2",
             "ExportLogsServiceRequest", "LogsServiceStub"),
}


def _grpc_export(signal: str, channel: Any) -> tuple[Any, Any]:
    module, request, stub = _GRPC_SERVICES[signal]
    messages: Any = importlib.import_module(module)
    services: Any = importlib.import_module(module + "_grpc")
    return getattr(services, stub)(channel), getattr(messages, request)()


def probe(target: Target, timeout: float = DEFAULT_TIMEOUT) -> Check:
    """Whether ``target`` answers an empty export within ``timeout`` seconds."""
    if target.protocol == _exporters.GRPC:
        return probe_grpc(target, timeout)
    return probe_http(target, timeout)
