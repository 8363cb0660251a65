"""Real OTLP endpoints for tests, all bound to 127.0.0.1: a receiver, a black hole, a closed port.

Example:
    >>> with OTLPHTTPReceiver() as rx:            # doctest: +SKIP
    ...     run_python("import modelotel; modelotel.configure(endpoint=%r)" % rx.url)
    ...     rx.spans()

* :class:`OTLPHTTPReceiver` answers OTLP/HTTP protobuf POSTs to ``/v1/traces``,
  ``/v1/metrics`` and ``/v1/logs`` and decodes them with ``opentelemetry.proto``.
* :class:`OTLPGrpcReceiver` is the same for OTLP/gRPC.
* :class:`BlackHole` accepts connections and reads forever, never answering.
* :class:`ClosedPort` holds a port that is bound but not listening: connecting is refused,
  and no other process can take the port meanwhile.
* :func:`run_python` runs a script in a fresh interpreter (OTel global providers can be set
  only once per process) with the ``OTEL_*`` variables of the test run removed.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclass
class Span:
    name: str
    resource: dict[str, Any]
    attributes: dict[str, Any]


@dataclass
class Point:
    name: str
    resource: dict[str, Any]
    attributes: dict[str, Any]
    value: float


@dataclass
class Log:
    body: Any
    resource: dict[str, Any]
    attributes: dict[str, Any]


@dataclass
class _Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)
    logs: list[ExportLogsServiceRequest] = field(default_factory=list)
    #: (path, lower-cased request headers) of every OTLP/HTTP request received.
    headers: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def spans(self) -> list[Span]:
        with self.lock:
            reqs = list(self.traces)
        return [
            Span(sp.name, attrs(rs.resource.attributes), attrs(sp.attributes))
            for req in reqs
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for sp in ss.spans
        ]

    def points(self) -> list[Point]:
        with self.lock:
            reqs = list(self.metrics)
        out: list[Point] = []
        for req in reqs:
            for rm in req.resource_metrics:
                res = attrs(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        for dp in getattr(m, kind).data_points:
                            if kind == "histogram":
                                value = float(dp.count)
                            else:
                                value = float(getattr(dp, dp.WhichOneof("value")))
                            out.append(Point(m.name, res, attrs(dp.attributes), value))
        return out

    def log_records(self) -> list[Log]:
        with self.lock:
            reqs = list(self.logs)
        return [
            Log(any_value(lr.body), attrs(rl.resource.attributes), attrs(lr.attributes))
            for req in reqs
            for rl in req.resource_logs
            for sl in rl.scope_logs
            for lr in sl.log_records
        ]


_ROUTES: dict[str, tuple[type[Any], type[Any], str]] = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse, "traces"),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse, "metrics"),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, "logs"),
}


class OTLPHTTPReceiver(_Store):
    """An OTLP/HTTP (protobuf) receiver on 127.0.0.1; ``url`` is its base endpoint.

    ``refuse_with``: an HTTP status it answers every export with, keeping nothing (400 is
    one that exporters do not retry).
    """

    def __init__(self, refuse_with: int | None = None) -> None:
        super().__init__()
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                route = _ROUTES.get(self.path)
                if route is None or refuse_with is not None:
                    self.send_response(404 if refuse_with is None else refuse_with)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                req_type, resp_type, kind = route
                request = req_type.FromString(body)
                with store.lock:
                    getattr(store, kind).append(request)
                    store.headers.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()})
                    )
                payload = resp_type().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OTLPHTTPReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class OTLPGrpcReceiver(_Store):
    """An OTLP/gRPC receiver (traces, metrics, logs) on 127.0.0.1; ``url`` is its endpoint."""

    def __init__(self) -> None:
        super().__init__()
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        store = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
                with store.lock:
                    store.traces.append(request)
                return ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
                with store.lock:
                    store.metrics.append(request)
                return ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
                with store.lock:
                    store.logs.append(request)
                return ExportLogsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> OTLPGrpcReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)


class BlackHole:
    """Accepts TCP connections on 127.0.0.1 and reads forever; never writes a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        while not self._stop.is_set():
            try:
                if not conn.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def __enter__(self) -> BlackHole:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._conns:
            conn.close()
        self._sock.close()


class ClosedPort:
    """A port bound on 127.0.0.1 without listening: every connection is refused."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> ClosedPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment of this process without OTEL_*/MODELOTEL_* variables, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MODELOTEL_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def run_python(
    code: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; return the finished process (text output)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass; return its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())
