"""Real processes for the integration tests: our collector, a downstream collector, Prometheus.

Everything binds 127.0.0.1 on free ports and lives in a temporary directory; every process is
stopped by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = REPO / "collector-config"
CONFIGS = Path(__file__).resolve().parent / "configs"
PROMETHEUS_DIR = COLLECTOR_CONFIG / "prometheus"
GRAFANA_DIR = COLLECTOR_CONFIG / "grafana"
#: Prometheus rule files shipped (their promtool unit tests are the *.test.yml beside them).
RULE_FILES = sorted(p for p in PROMETHEUS_DIR.glob("*.yml") if not p.name.endswith(".test.yml"))
RULE_TESTS = sorted(PROMETHEUS_DIR.glob("*.test.yml"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())
    except (urllib.error.URLError, OSError):
        return 0, b""


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition (a collector's or Prometheus' own /metrics)."""
    status, body = http_get(url)
    if status != 200:
        raise AssertionError(f"GET {url}: HTTP {status}")
    out: list[tuple[str, dict[str, str], float]] = []
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels = dict(_LABEL.findall(rest)) if rest else {}
        out.append((name, labels, float(value)))
    return out


_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_sum(
    samples: Iterable[tuple[str, dict[str, str], float]], name: str, **labels: str
) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items())
    )


@dataclass
class Proc:
    """One child process with its log file; stop() is idempotent."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        rc = self.popen.returncode
        self.popen = None
        return rc

    def wait(self, timeout: float) -> int | None:
        """Wait for the process to exit by itself; SIGTERM it after ``timeout``."""
        if self.popen is None:
            return None
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.stop()
        rc = self.popen.returncode
        self.popen = None
        return rc

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-n:])


@dataclass
class Collector:
    """An otelcol-modelotel process with the given --config files and environment."""

    binary: Path
    configs: Sequence[Path | str]
    env: dict[str, str]
    workdir: Path
    name: str = "collector"
    health_port: int = field(default_factory=free_port)
    proc: Proc | None = None

    def argv(self) -> list[str]:
        return [str(self.binary), *(f"--config={c}" for c in self.configs)]

    def start(self, timeout: float = 60.0) -> None:
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("MODELOTEL_COLLECTOR_HEALTH_PORT", str(self.health_port))
        self.health_port = int(env["MODELOTEL_COLLECTOR_HEALTH_PORT"])
        self.proc = Proc(self.name, self.argv(), env, self.workdir / f"{self.name}.log")
        self.proc.start()
        host = env.get("MODELOTEL_COLLECTOR_HOST", "127.0.0.1")  # the health check binds it too
        url = f"http://{host}:{self.health_port}/"

        def healthy() -> bool:
            assert self.proc is not None
            if not self.proc.alive():
                raise AssertionError(f"{self.name} exited at start:\n{self.proc.tail()}")
            return http_get(url, timeout=1.0)[0] == 200

        wait_until(healthy, timeout, what=f"{self.name} health check on {url}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        return None if self.proc is None else self.proc.stop(sig)

    def log(self) -> str:
        return "" if self.proc is None else self.proc.log()

    def telemetry(self) -> list[tuple[str, dict[str, str], float]]:
        """The collector's own metrics (its telemetry port, Prometheus text format)."""
        return scrape(f"http://127.0.0.1:{self.env['MODELOTEL_COLLECTOR_TELEMETRY_PORT']}/metrics")


def collector_env(workdir: Path, **extra: str) -> dict[str, str]:
    """Environment for a modelotel collector on free ports, with its queue under workdir."""
    env = {
        "MODELOTEL_COLLECTOR_HOST": "127.0.0.1",
        "MODELOTEL_COLLECTOR_GRPC_PORT": str(free_port()),
        "MODELOTEL_COLLECTOR_HTTP_PORT": str(free_port()),
        "MODELOTEL_COLLECTOR_HEALTH_PORT": str(free_port()),
        "MODELOTEL_COLLECTOR_TELEMETRY_PORT": str(free_port()),
        "MODELOTEL_COLLECTOR_STORAGE_DIR": str(workdir / "queue"),
        "MODELOTEL_COLLECTOR_RETRY_MAX_INTERVAL": "1s",
    }
    env.update(extra)
    return env


# --- the downstream "backend": a second collector, OTLP in, JSON files out -----------------


class Downstream:
    """A second collector (OTLP gRPC in, file exporter out) standing in for the tracing / logs
    backend. Each start writes new files, so the counts survive stop/start cycles."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.dir = workdir / "downstream"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.health_port = free_port()
        self.runs = 0
        self.collector: Collector | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> None:
        self.runs += 1
        env = {
            "DOWNSTREAM_GRPC_PORT": str(self.grpc_port),
            "DOWNSTREAM_HTTP_PORT": str(self.http_port),
            "MODELOTEL_COLLECTOR_HEALTH_PORT": str(self.health_port),
            "DOWNSTREAM_TRACES_FILE": str(self.dir / f"traces-{self.runs}.jsonl"),
            "DOWNSTREAM_LOGS_FILE": str(self.dir / f"logs-{self.runs}.jsonl"),
            "DOWNSTREAM_METRICS_FILE": str(self.dir / f"metrics-{self.runs}.jsonl"),
        }
        self.collector = Collector(
            self.binary,
            [CONFIGS / "downstream.yaml"],
            env,
            self.dir,
            name=f"downstream-{self.runs}",
        )
        self.collector.start()

    def stop(self) -> None:
        if self.collector is not None:
            self.collector.stop()
            self.collector = None

    def _lines(self, kind: str) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.dir.glob(f"{kind}-*.jsonl")):
            text = path.read_text()
            lines = text.split("\n")
            if not text.endswith("\n"):
                lines = lines[:-1]  # the exporter is still writing the last line
            out.extend(json.loads(line) for line in lines if line.strip())
        return out

    def spans(self) -> list[dict[str, Any]]:
        """Every span received, each with its resource attributes under "_resource"."""
        spans = []
        for req in self._lines("traces"):
            for rs in req.get("resourceSpans", []):
                res = attrs_dict(rs.get("resource", {}).get("attributes", []))
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        spans.append(
                            {**s, "_resource": res, "_attrs": attrs_dict(s.get("attributes", []))}
                        )
        return spans

    def metrics(self) -> list[dict[str, Any]]:
        """Every metric received (one entry per metric per request), with "_resource"."""
        out = []
        for req in self._lines("metrics"):
            for rm in req.get("resourceMetrics", []):
                res = attrs_dict(rm.get("resource", {}).get("attributes", []))
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        out.append({**m, "_resource": res})
        return out

    def logs(self) -> list[dict[str, Any]]:
        recs = []
        for req in self._lines("logs"):
            for rl in req.get("resourceLogs", []):
                for sl in rl.get("scopeLogs", []):
                    for r in sl.get("logRecords", []):
                        recs.append({**r, "_attrs": attrs_dict(r.get("attributes", []))})
        return recs


def any_value(v: Mapping[str, Any]) -> Any:
    """Decode an OTLP/JSON AnyValue."""
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [any_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return attrs_dict(v["kvlistValue"].get("values", []))
    return None


def attrs_dict(kvs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: any_value(kv.get("value", {})) for kv in kvs}


# --- Prometheus (Debian's package) ---------------------------------------------------------


class Prometheus:
    """A real Prometheus with the remote-write receiver on, on a free port, data in workdir."""

    def __init__(
        self,
        binary: Path,
        workdir: Path,
        rule_files: Sequence[Path] = (),
        scrape_targets: Sequence[str] = (),
        alertmanagers: Sequence[str] = (),
        storage: Mapping[str, Any] | None = None,
    ) -> None:
        self.binary = binary
        self.dir = workdir / "prometheus"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cfg = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s"]
        if alertmanagers:
            cfg += ["alerting:", "  alertmanagers:", "    - static_configs:",
                    "        - targets: [" + ", ".join(f"'{a}'" for a in alertmanagers) + "]"]
        # rules.d/*.yml: rule files a test adds while Prometheus runs (load_rules)
        self.rules_dir = self.dir / "rules.d"
        self.rules_dir.mkdir(exist_ok=True)
        cfg.append("rule_files:")
        cfg += [f"  - {p}" for p in (*rule_files, self.rules_dir / "*.yml")]
        if scrape_targets:
            cfg += [
                "scrape_configs:",
                "  - job_name: otelcol-modelotel",
                "    static_configs:",
                "      - targets: [" + ", ".join(f"'{t}'" for t in scrape_targets) + "]",
            ]
        if storage:  # e.g. the out-of-order window of collector-config/prometheus-server.yml
            cfg.append("storage: " + json.dumps(storage))  # a JSON object is YAML too
        self.config = self.dir / "prometheus.yml"
        self.config.write_text("\n".join(cfg) + "\n")
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def start(self, timeout: float = 60.0) -> None:
        argv = [
            str(self.binary),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-remote-write-receiver",
            "--enable-feature=exemplar-storage",  # the duration histogram's exemplars
            "--storage.tsdb.retention.time=1h",
            "--web.enable-lifecycle",  # POST /-/reload (load_rules)
        ]
        self.proc = Proc("prometheus", argv, dict(os.environ), self.dir / "prometheus.log")
        self.proc.start()

        def ready() -> bool:
            assert self.proc is not None
            if not self.proc.alive():
                raise AssertionError(f"prometheus exited at start:\n{self.proc.tail()}")
            return http_get(f"{self.url}/-/ready", timeout=1.0)[0] == 200

        wait_until(ready, timeout, what="prometheus /-/ready")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def api(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_get(url, timeout=10.0)
        try:
            data: dict[str, Any] = json.loads(body) if body else {}
        except json.JSONDecodeError:
            data = {}
        data.setdefault("_http_status", status)
        return data

    def load_rules(self, path: Path, timeout: float = 30.0) -> None:
        """Add a rule file and reload; returns once Prometheus has loaded its groups."""
        import shutil

        dest = self.rules_dir / path.name
        shutil.copyfile(path, dest)
        req = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        wait_until(
            lambda: any(g.get("file") == str(dest)
                        for g in self.api("rules").get("data", {}).get("groups", [])),
            timeout, what=f"prometheus loaded {dest}",
        )

    def query(self, expr: str) -> dict[str, Any]:
        """Instant query; returns the whole API answer (status, data / error)."""
        return self.api("query", query=expr)

    def metric_names(self) -> set[str]:
        return set(self.api("label/__name__/values").get("data", []))

    def query_at(self, expr: str, at: float) -> list[dict[str, Any]]:
        """Instant query at Unix time ``at``; the result vector (AssertionError on an error)."""
        answer = self.api("query", query=expr, time=f"{at:.3f}")
        assert answer.get("status") == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


# --- Alertmanager (Debian's package) and a webhook receiver ------------------------------------


class Alertmanager:
    """Debian's Alertmanager on a free port (clustering off), with the given config text."""

    def __init__(self, binary: Path, workdir: Path, config_text: str) -> None:
        self.binary = binary
        self.dir = workdir / "alertmanager"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = self.dir / "alertmanager.yml"
        self.config.write_text(config_text)
        self.proc: Proc | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        argv = [
            str(self.binary),
            f"--config.file={self.config}",
            f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",  # no gossip port: one instance, loopback only
        ]
        self.proc = Proc("alertmanager", argv, dict(os.environ), self.dir / "alertmanager.log")
        self.proc.start()

        def ready() -> bool:
            assert self.proc is not None
            if not self.proc.alive():
                raise AssertionError(f"alertmanager exited at start:\n{self.proc.tail()}")
            return http_get(f"http://{self.address}/-/ready", timeout=1.0)[0] == 200

        wait_until(ready, timeout, what="alertmanager /-/ready")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


class Webhook:
    """An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it, by path."""

    def __init__(self) -> None:
        import http.server
        import threading

        received: list[tuple[str, dict[str, Any]]] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((self.path, json.loads(body or b"{}")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the instrumented model, in its own process ---------------------------------------------


def run_model_app(
    workdir: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    timeout: float = 120.0,
    script: str = "model_app.py",
) -> dict[str, Any]:
    """Run tests/integration/model_app.py (or another ``script`` beside it); it prints one JSON
    summary line at the end."""
    import sys

    full_env = dict(os.environ)
    full_env.update(env)
    log = workdir / f"{Path(script).stem}.log"
    with log.open("ab") as err:
        cp = subprocess.run(
            [sys.executable, str(Path(__file__).parent / script), *args],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=timeout,
            check=False,
        )
    out = cp.stdout.decode(errors="replace").strip().splitlines()
    if cp.returncode != 0 or not out:
        raise AssertionError(
            f"{script} failed (rc={cp.returncode}):\n{log.read_text(errors='replace')[-4000:]}"
        )
    result: dict[str, Any] = json.loads(out[-1])
    return result


def start_model_app(workdir: Path, args: Sequence[str], env: Mapping[str, str]) -> Proc:
    """Start model_app.py in the background (for the durability test)."""
    import sys

    full_env = dict(os.environ)
    full_env.update(env)
    proc = Proc(
        "model_app",
        [sys.executable, str(Path(__file__).parent / "model_app.py"), *args],
        full_env,
        workdir / "model_app.log",
    )
    proc.start()
    return proc


@dataclass
class Stack:
    """Our collector (base.yaml) between the model and its backends."""

    workdir: Path
    downstream: Downstream
    prometheus: Prometheus
    collector: Collector

    def otlp_env(self, protocol: str) -> dict[str, str]:
        """OTEL_* variables that point an SDK process at our collector."""
        key = (
            "MODELOTEL_COLLECTOR_GRPC_PORT"
            if protocol == "grpc"
            else "MODELOTEL_COLLECTOR_HTTP_PORT"
        )
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.collector.env[key]}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
            "OTEL_SERVICE_NAME": "integration-model",
        }


def kill_quietly(
    *procs: Proc | Collector | Prometheus | Downstream | Alertmanager | Webhook | None,
) -> None:
    for p in procs:
        if p is None:
            continue
        with contextlib.suppress(Exception):
            p.stop()
