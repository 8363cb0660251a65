"""Load for the collector sizing: OTLP/HTTP requests that the modelotel SDK really sends, replayed.

    corpus = capture(workdir)                      # the SDK's requests, by kind
    sent = replay(base_url, corpus["spans"], rate=20_000, seconds=10)

``capture`` runs tests/integration/model_app.py (a model instrumented with a baseline, payload
sampling on every call, 8 rows x 5 columns per call) against an HTTP server in this process that
keeps every request body: traces, metrics and payload log records exactly as the SDK encodes
them (OTLP/HTTP protobuf, the SDK's default protocol; 512 spans / records per request, the SDK's
batch size). ``replay`` posts them again, round robin, from a few threads with keep-alive
connections, at a given rate of items or as fast as it goes. Posting prepared bytes costs the
generator far less per item than the collector's work, so the collector, not the generator, is
what saturates on a small machine. ``fresh_ids`` gives span requests new trace and span ids
(for the tail sampler, which groups by trace id).
"""

from __future__ import annotations

import http.client
import itertools
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

REPO = Path(__file__).resolve().parents[1]
PATHS = {"spans": "/v1/traces", "metric_points": "/v1/metrics", "payload_records": "/v1/logs"}


@dataclass
class Corpus:
    """Request bodies of one kind and how many items (spans, data points, records) each holds."""

    kind: str
    bodies: list[bytes] = field(default_factory=list)
    items: list[int] = field(default_factory=list)

    @property
    def path(self) -> str:
        return PATHS[self.kind]

    def bytes_per_item(self) -> float:
        return sum(map(len, self.bodies)) / max(1, sum(self.items))


def count_items(kind: str, body: bytes) -> int:
    if kind == "spans":
        t = ExportTraceServiceRequest.FromString(body)
        return sum(len(ss.spans) for rs in t.resource_spans for ss in rs.scope_spans)
    if kind == "payload_records":
        lg = ExportLogsServiceRequest.FromString(body)
        return sum(
            1
            for rl in lg.resource_logs
            for sl in rl.scope_logs
            for r in sl.log_records
            if r.event_name == "ml.prediction.payload"
        )
    m = ExportMetricsServiceRequest.FromString(body)
    n = 0
    for rm in m.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                data = getattr(metric, metric.WhichOneof("data") or "gauge")
                n += len(data.data_points)
    return n


def fresh_ids(body: bytes, rng: random.Random) -> bytes:
    """The same spans with new ids (each trace id mapped to a new one, consistently)."""
    t = ExportTraceServiceRequest.FromString(body)
    traces: dict[bytes, bytes] = {}
    for rs in t.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                s.trace_id = traces.setdefault(s.trace_id, rng.randbytes(16))
                s.span_id = rng.randbytes(8)
    return bytes(t.SerializeToString())


class _Capture(BaseHTTPRequestHandler):
    bodies: dict[str, list[bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.bodies.setdefault(self.path, []).append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def capture(workdir: Path, calls: int = 3072) -> dict[str, Corpus]:
    """The instrumented model's requests, by kind. Two runs: with a training baseline (drift
    metrics; its serving data has columns the baseline lacks, so a check fires on every call:
    kept as ``spans_checks_fired``) and without (ordinary spans: ``spans``)."""
    out = _capture(workdir, calls, ["--baseline"])
    out["spans_checks_fired"] = out["spans"]
    out["spans"] = _capture(workdir, calls, [])["spans"]
    return out


def _capture(workdir: Path, calls: int, extra_args: list[str]) -> dict[str, Corpus]:
    bodies: dict[str, list[bytes]] = {}
    handler = type("Capture", (_Capture,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "sizing-model",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        # full batches of 512, as a busy server sends them
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
        "OTEL_BLRP_SCHEDULE_DELAY": "60000",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
        "OTEL_BLRP_MAX_QUEUE_SIZE": "100000",
    }
    app = REPO / "tests" / "integration" / "model_app.py"
    args = ["--calls", str(calls), "--rate", "1000", "--rows", "8", *extra_args]
    try:
        subprocess.run(
            [sys.executable, str(app), *args],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "capture.log").open("wb"),
            timeout=300,
        )
    finally:
        server.shutdown()
    # One model's metric export is small (81 points here): a server with several models or
    # more features sends more per request. Merge exports into requests of >= 512 points, so
    # that the per-request cost does not dominate the per-point figure.
    bodies[PATHS["metric_points"]] = _merge_metrics(bodies.get(PATHS["metric_points"], []))
    out = {}
    for kind, path in PATHS.items():
        corpus = Corpus(kind)
        for body in bodies.get(path, []):
            n = count_items(kind, body)
            if n:
                corpus.bodies.append(body)
                corpus.items.append(n)
        out[kind] = corpus
    return out


def _merge_metrics(bodies: list[bytes], at_least: int = 512) -> list[bytes]:
    out: list[bytes] = []
    merged = ExportMetricsServiceRequest()
    for body in bodies:
        merged.resource_metrics.extend(ExportMetricsServiceRequest.FromString(body).resource_metrics)
        if count_items("metric_points", merged.SerializeToString()) >= at_least:
            out.append(bytes(merged.SerializeToString()))
            merged = ExportMetricsServiceRequest()
    return out


@dataclass
class Replayed:
    items: int = 0
    requests: int = 0
    refused: int = 0  # 429 / 503: the memory limiter's push-back
    failed: int = 0
    seconds: float = 0.0


def replay(
    base_url: str, corpus: Corpus, rate: float, seconds: float, threads: int = 4
) -> Replayed:
    """Post the corpus round robin for ``seconds``; ``rate`` items/s in total (0: no pacing)."""
    host, port = base_url.removeprefix("http://").split(":")
    order = itertools.cycle(range(len(corpus.bodies)))
    lock = threading.Lock()
    total = Replayed()
    start = time.monotonic()
    stop_at = start + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        done = 0
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            if rate:  # each thread its share of the rate
                due = start + done / (rate / threads)
                if due > now:
                    time.sleep(min(due - now, stop_at - now))
                    continue
            with lock:
                i = next(order)
            try:
                conn.request(
                    "POST",
                    corpus.path,
                    body=corpus.bodies[i],
                    headers={"Content-Type": "application/x-protobuf"},
                )
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                status = 0
            with lock:
                total.requests += 1
                if status == 200:
                    total.items += corpus.items[i]
                elif status in (429, 503):
                    total.refused += 1
                else:
                    total.failed += 1
            done += corpus.items[i]
        conn.close()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    total.seconds = time.monotonic() - start
    return total


@contextmanager
def background(
    base_url: str, corpus: Corpus, rate: float, seconds: float, threads: int = 4
) -> Iterator[list[Replayed]]:
    """``replay`` in a thread; the list holds its result once the block has waited for it."""
    result: list[Replayed] = []
    t = threading.Thread(
        target=lambda: result.append(replay(base_url, corpus, rate, seconds, threads)),
        daemon=True,
    )
    t.start()
    try:
        yield result
    finally:
        t.join()
