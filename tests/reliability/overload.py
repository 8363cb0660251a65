"""Collector overload: large OTLP/HTTP requests from many clients, RSS sampled from /proc.

Example::

    body = trace_request(3_100_000)                    # one ~3.1 MB ExportTraceServiceRequest
    with RssSampler(pid) as rss, Flood(url, body, clients=16) as flood:
        time.sleep(30)
    rss.peak_mib, flood.statuses                       # {200: .., 503: ..}

Used by test_collector_overload.py; also runnable by hand to size a collector::

    .venv/bin/python tests/reliability/overload.py --limit-mib 128 --seconds 60
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from collections import Counter
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

MIB = 1024 * 1024
FLOOD_SERVICE = "overload-flood"


def trace_request(target_bytes: int, service: str = FLOOD_SERVICE) -> bytes:
    """A serialized ExportTraceServiceRequest of about ``target_bytes`` (spans of ~400 B)."""
    rs = ResourceSpans()
    rs.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value=service))
    )
    ss = ScopeSpans()
    ss.scope.name = "overload"
    span = Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        name="flood",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
    )
    for i in range(8):
        span.attributes.append(
            KeyValue(key=f"attr.{i}", value=AnyValue(string_value="v" * 32))
        )
    one = len(span.SerializeToString()) + 4
    for i in range(max(1, target_bytes // one)):
        s = ss.spans.add()
        s.CopyFrom(span)
        s.span_id = i.to_bytes(8, "big")
    rs.scope_spans.append(ss)
    req = ExportTraceServiceRequest(resource_spans=[rs])
    return req.SerializeToString()


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile and VmHWM of a process, in MiB (empty if it is gone)."""
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(rest.split()[0]) / 1024.0
    return out


@dataclass
class RssSampler:
    """Samples a process's memory every ``interval`` s in a thread; ``samples`` keeps them."""

    pid: int
    interval: float = 0.25
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            mem = proc_memory(self.pid)
            if mem:
                self.samples.append((time.monotonic() - self._t0, mem))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def peak(self, key: str = "VmRSS", since: float = 0.0, until: float = 1e18) -> float:
        values = [m.get(key, 0.0) for t, m in self.samples if since <= t <= until]
        return max(values, default=0.0)

    def last(self, key: str = "VmRSS") -> float:
        return self.samples[-1][1].get(key, 0.0) if self.samples else 0.0


class Flood:
    """``clients`` threads POSTing ``body`` to ``url`` back to back, counting statuses.

    Each client honours ``Retry-After`` when the collector sends one, and otherwise sends
    again at once: the overload is the point.
    """

    def __init__(self, url: str, body: bytes, clients: int = 16) -> None:
        self.url = urllib.parse.urlsplit(url)
        self.body = body
        self.clients = clients
        self.statuses: Counter[int | str] = Counter()
        self.retry_after: Counter[str] = Counter()
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = futures.ThreadPoolExecutor(clients)
        self._futures: list[futures.Future[None]] = []

    def _client(self) -> None:
        conn: http.client.HTTPConnection | None = None
        headers = {"Content-Type": "application/x-protobuf"}
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(
                        self.url.hostname, self.url.port, timeout=30
                    )
                conn.request("POST", "/v1/traces", body=self.body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status: int | str = resp.status
                wait = resp.getheader("Retry-After")
            except (OSError, http.client.HTTPException) as exc:
                status, wait = type(exc).__name__, None
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(0.1)
            with self._lock:
                self.statuses[status] += 1
                if status == 200:
                    self.bytes_sent += len(self.body)
                if wait is not None:
                    self.retry_after[wait] += 1
            if wait is not None:
                with contextlib.suppress(ValueError):
                    self._stop.wait(min(float(wait), 5.0))
        if conn is not None:
            conn.close()

    def __enter__(self) -> Flood:
        self._futures = [self._pool.submit(self._client) for _ in range(self.clients)]
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for f in self._futures:
            f.result(timeout=60)
        self._pool.shutdown(wait=True)


class NullGrpcBackend:
    """An OTLP/gRPC backend on 127.0.0.1 that counts requests and spans per service name.

    It parses each request (the C protobuf parser; a 3 MB request takes milliseconds) and
    answers success; nothing is kept but counts and the prediction ids of the spans of
    ``service`` (for exact accounting of an SDK sending through the same collector).
    """

    def __init__(self, service: str | None = None) -> None:
        import grpc

        self.service = service
        self.requests = 0
        self.spans: Counter[str] = Counter()
        self.ids: Counter[str] = Counter()
        self._lock = threading.Lock()
        backend = self

        def export(request: bytes, context: Any) -> bytes:
            req = ExportTraceServiceRequest.FromString(request)
            n: Counter[str] = Counter()
            ids: list[str] = []
            for rs in req.resource_spans:
                name = next(
                    (kv.value.string_value for kv in rs.resource.attributes
                     if kv.key == "service.name"),
                    "",
                )
                for ss in rs.scope_spans:
                    n[name] += len(ss.spans)
                    if name == backend.service:
                        for sp in ss.spans:
                            for kv in sp.attributes:
                                if kv.key == "ml.prediction.id":
                                    ids.append(kv.value.string_value)
            with backend._lock:
                backend.requests += 1
                backend.spans.update(n)
                backend.ids.update(ids)
            return b""

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(export)},
        )
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            options=[("grpc.max_receive_message_length", 64 * MIB)],
        )
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{self.port}"

    def __enter__(self) -> NullGrpcBackend:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)


class MemoryCgroup:
    """A cgroup-v1 memory group capping its processes at ``limit_mib`` (a container's limit).

    ``available()`` is False where the memory controller cannot be written (not root, no
    cgroup v1): callers skip that part of the check. ``oom_kills`` counts the processes the
    kernel killed for the limit.
    """

    ROOT = Path("/sys/fs/cgroup/memory")

    def __init__(self, name: str, limit_mib: int) -> None:
        self.path = self.ROOT / name
        self.limit_mib = limit_mib

    @classmethod
    def available(cls) -> bool:
        return os.access(cls.ROOT, os.W_OK) and (cls.ROOT / "memory.limit_in_bytes").exists()

    def __enter__(self) -> MemoryCgroup:
        self.path.mkdir(exist_ok=True)
        (self.path / "memory.limit_in_bytes").write_text(str(self.limit_mib * MIB))
        return self

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the group (the shell joins it, then execs the program)."""
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *argv]

    def oom_kills(self) -> int:
        for line in (self.path / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def max_usage_mib(self) -> float:
        return int((self.path / "memory.max_usage_in_bytes").read_text()) / MIB

    def __exit__(self, *exc: object) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:  # processes still leaving
                time.sleep(0.1)


def collector_metrics(port: int) -> dict[str, float]:
    """The collector's own Prometheus metrics (name{labels} -> value), summed per line key."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    except OSError:
        return {}
    finally:
        conn.close()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = out.get(key, 0.0) + float(value)
        except ValueError:
            continue
    return out


def metric_sum(metrics: dict[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for key, value in metrics.items():
        base = key.split("{", 1)[0]
        if base != name:
            continue
        if all(f'{k}="{v}"' in key for k, v in labels.items()):
            total += value
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:  # pragma: no cover - a tool for sizing by hand
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent / "integration"))
    from harness import COLLECTOR_CONFIG, collector_env, http_get, wait_until

    p = argparse.ArgumentParser()
    p.add_argument("--binary", default=os.environ.get("MODELOTEL_OTELCOL", ""))
    p.add_argument("--limit-mib", type=int, default=512)
    p.add_argument("--spike-mib", type=int, default=0, help="default: 25%% of the limit")
    p.add_argument("--gomemlimit-mib", type=int, default=0,
                   help="default: 80%% of the limit; -1: leave GOMEMLIMIT unset")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--body-mb", type=float, default=3.1)
    p.add_argument("--workdir", default="/tmp/overload")
    p.add_argument("--config", action="append", default=[])
    args = p.parse_args()
    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    spike = args.spike_mib or args.limit_mib // 4
    gomem = args.gomemlimit_mib or args.limit_mib * 4 // 5
    with NullGrpcBackend() as backend:
        env = dict(os.environ)
        env.update(collector_env(wd, MODELOTEL_COLLECTOR_TRACES_ENDPOINT=backend.endpoint,
                                 MODELOTEL_COLLECTOR_LOGS_ENDPOINT=backend.endpoint))
        env["MODELOTEL_COLLECTOR_MEMORY_LIMIT_MIB"] = str(args.limit_mib)
        env["MODELOTEL_COLLECTOR_MEMORY_SPIKE_MIB"] = str(spike)
        if gomem > 0:
            env["GOMEMLIMIT"] = f"{gomem}MiB"
        else:
            env.pop("GOMEMLIMIT", None)
        configs = [str(COLLECTOR_CONFIG / "base.yaml"), *args.config]
        log = (wd / "collector.log").open("ab")
        proc = subprocess.Popen([args.binary, *(f"--config={c}" for c in configs)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            health = f"http://127.0.0.1:{env['MODELOTEL_COLLECTOR_HEALTH_PORT']}/"
            wait_until(lambda: http_get(health)[0] == 200, 60, what="collector health")
            body = trace_request(int(args.body_mb * 1e6))
            url = f"http://127.0.0.1:{env['MODELOTEL_COLLECTOR_HTTP_PORT']}"
            with RssSampler(proc.pid) as rss:
                time.sleep(2)
                idle = rss.last()
                with Flood(url, body, args.clients) as flood:
                    time.sleep(args.seconds)
                t_end = time.monotonic() - rss._t0
                time.sleep(10)
            metrics = collector_metrics(int(env["MODELOTEL_COLLECTOR_TELEMETRY_PORT"]))
            print(json.dumps({
                "limit_mib": args.limit_mib, "spike_mib": spike, "gomemlimit_mib": gomem,
                "body_bytes": len(body), "idle_rss": idle,
                "peak_rss": rss.peak(), "peak_anon": rss.peak("RssAnon"),
                "peak_file": rss.peak("RssFile"), "after_rss": rss.last(),
                "after_anon": rss.last("RssAnon"),
                "peak_rss_flood": rss.peak(until=t_end),
                "statuses": {str(k): v for k, v in flood.statuses.items()},
                "retry_after": dict(flood.retry_after),
                "backend_spans": sum(backend.spans.values()),
                "refused_spans": metric_sum(metrics, "otelcol_receiver_refused_spans_total"),
                "accepted_spans": metric_sum(metrics, "otelcol_receiver_accepted_spans_total"),
            }, indent=1))
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":  # pragma: no cover
    main()
