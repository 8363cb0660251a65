"""Local OTLP endpoints that count what they accept, per kind of record and prediction id.

Example::

    with CountingSink(mode="slow", delay=2.0) as sink:       # OTLP/HTTP on 127.0.0.1
        run_load_app(endpoint=sink.url)
    sink.delivered()       # {"span": Counter(ids), "payload": ..., "outcome": ..., "log": n}

A request counts as *delivered* when the sink answers it with 200, which is what the SDK
takes as success. Modes:

* ``ok``: answer at once;
* ``slow``: wait ``delay`` seconds, then answer (if the client still waits for it);
* ``hold``: read the request and never answer; the client gives up or goes away.
  :meth:`CountingSink.hold` switches a running sink to it (a collector that hangs).

Every request body (decompressed) can be kept (``keep_raw``) for byte-level scans. The
gRPC variant (:class:`RawGrpcSink`) keeps the raw bytes of every OTLP/gRPC request.
"""

from __future__ import annotations

import gzip
import select
import socket
import threading
import time
import zlib
from collections import Counter
from concurrent import futures
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

PREDICTION_ID = "ml.prediction.id"
EVENT_PAYLOAD = "ml.prediction.payload"
EVENT_OUTCOME = "ml.prediction.outcome"

_ROUTES: dict[str, tuple[Any, Any, str]] = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse, "traces"),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse, "metrics"),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, "logs"),
}


def _attr(kvs: Any, key: str) -> str:
    for kv in kvs:
        if kv.key == key:
            return str(kv.value.string_value)
    return ""


class Tally:
    """What was delivered, by kind: prediction ids (with multiplicity) and request counts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: dict[str, Counter[str]] = {
            "span": Counter(), "payload": Counter(), "outcome": Counter()
        }
        self.other_logs = 0
        self.requests: Counter[str] = Counter()
        self.metric_points = 0

    def add_traces(self, req: ExportTraceServiceRequest) -> None:
        ids = [_attr(sp.attributes, PREDICTION_ID)
               for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]
        with self.lock:
            self.ids["span"].update(ids)
            self.requests["traces"] += 1

    def add_logs(self, req: ExportLogsServiceRequest) -> None:
        payload, outcome, other = [], [], 0
        for rl in req.resource_logs:
            for sl in rl.scope_logs:
                for lr in sl.log_records:
                    if lr.event_name == EVENT_PAYLOAD:
                        payload.append(_attr(lr.attributes, PREDICTION_ID))
                    elif lr.event_name == EVENT_OUTCOME:
                        outcome.append(_attr(lr.attributes, PREDICTION_ID))
                    else:
                        other += 1
        with self.lock:
            self.ids["payload"].update(payload)
            self.ids["outcome"].update(outcome)
            self.other_logs += other
            self.requests["logs"] += 1

    def add_metrics(self, req: ExportMetricsServiceRequest) -> None:
        n = sum(1 for rm in req.resource_metrics for sm in rm.scope_metrics for _ in sm.metrics)
        with self.lock:
            self.metric_points += n
            self.requests["metrics"] += 1

    def delivered(self, kind: str) -> tuple[int, int]:
        """``(unique ids, duplicates)`` delivered of one kind."""
        with self.lock:
            ids = self.ids[kind]
            unique = len(ids)
            return unique, sum(ids.values()) - unique


def _client_gone(sock: socket.socket) -> bool:
    """True when the client closed its side (EOF waiting) or reset the connection."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class CountingSink(Tally):
    """An OTLP/HTTP (protobuf) receiver on 127.0.0.1 that tallies what it delivers."""

    def __init__(self, mode: str = "ok", delay: float = 0.0, keep_raw: bool = False) -> None:
        super().__init__()
        self.mode = mode
        self.delay = delay
        self.keep_raw = keep_raw
        self.raw: list[bytes] = []
        self.held = 0
        self.abandoned = 0
        self._stopping = threading.Event()
        sink = self

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
                if route is None:
                    self.send_error(404)
                    return
                if sink.keep_raw:
                    with sink.lock:
                        sink.raw.append(body)
                mode = sink.mode
                if mode == "hold":
                    sink._hold(self.connection)
                    self.close_connection = True
                    return
                if mode == "slow":
                    end = time.monotonic() + sink.delay
                    while time.monotonic() < end and not sink._stopping.is_set():
                        if _client_gone(self.connection):
                            break
                        time.sleep(0.02)
                    if _client_gone(self.connection) or sink._stopping.is_set():
                        with sink.lock:
                            sink.abandoned += 1
                        self.close_connection = True
                        return
                req_type, resp_type, kind = route
                request = req_type.FromString(body)
                getattr(sink, f"add_{kind}")(request)
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

    def _hold(self, sock: socket.socket) -> None:
        with self.lock:
            self.held += 1
        while not self._stopping.is_set() and not _client_gone(sock):
            time.sleep(0.05)

    def hold(self) -> None:
        """From now on, read requests and never answer them (a collector that hangs)."""
        self.mode = "hold"

    def __enter__(self) -> CountingSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


class RawGrpcSink:
    """An OTLP/gRPC receiver on 127.0.0.1 keeping the raw bytes of every request."""

    def __init__(self) -> None:
        import grpc

        self.raw: list[bytes] = []
        self.tally = Tally()
        self._lock = threading.Lock()
        sink = self

        def handler(kind: str, req_type: Any, resp_type: Any) -> Any:
            def export(request: bytes, context: Any) -> bytes:
                with sink._lock:
                    sink.raw.append(request)
                getattr(sink.tally, f"add_{kind}")(req_type.FromString(request))
                return bytes(resp_type().SerializeToString())

            return grpc.unary_unary_rpc_method_handler(export)

        services = [
            ("opentelemetry.proto.collector.trace.v1.TraceService", "traces",
             ExportTraceServiceRequest, ExportTraceServiceResponse),
            ("opentelemetry.proto.collector.metrics.v1.MetricsService", "metrics",
             ExportMetricsServiceRequest, ExportMetricsServiceResponse),
            ("opentelemetry.proto.collector.logs.v1.LogsService", "logs",
             ExportLogsServiceRequest, ExportLogsServiceResponse),
        ]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers([
            grpc.method_handlers_generic_handler(name, {"Export": handler(kind, rq, rs)})
            for name, kind, rq, rs in services
        ])
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> RawGrpcSink:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)
