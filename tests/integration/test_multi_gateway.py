"""Two gateways behind one name, three agents, one agent switching gateway mid-run.

The layout a fleet runs: each model server's SDK -> its agent (agent.yaml) -> a gateway tier
(base.yaml + gateway.yaml) -> Prometheus and the tracing / logs backend. The gateways share one
DNS name with two addresses (127.0.0.1 and 127.0.0.2, same ports; dnsstub.py serves the name),
as a headless Kubernetes Service does; two agents balance over both (round_robin), the third
talks to the first gateway, then is restarted pointing at the second (its persistent queue kept).

One gateway batches metrics for 6 s (a gateway that lags: CPU-starved, or retrying), so a
replica's samples reach Prometheus out of time order, as they do in a fleet. Prometheus runs
with the out-of-order window of collector-config/prometheus-server.yml. Proven: every sample
accepted (Prometheus' own rejection counters stay 0, and out-of-order samples were indeed
appended), every collector's counts balance (points in = points out, nothing refused or failed),
and each replica's call count, spans and payload records arrive exactly.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from dnsstub import DnsStub
from harness import (
    COLLECTOR_CONFIG,
    Collector,
    Downstream,
    Proc,
    Prometheus,
    collector_env,
    free_port,
    kill_quietly,
    metric_sum,
    scrape,
    start_model_app,
    wait_until,
)

from modelotel import attributes as A  # noqa: N812

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "gateways.modelotel.test"
GATEWAY_ADDRESSES = ("127.0.0.1", "127.0.0.2")
REPLICAS = 3
RUN_SECONDS = 18.0
LAGGING_BATCH = "yaml:processors::batch/metrics::timeout: 6s"


def _prometheus_storage() -> dict[str, object]:
    cfg = yaml.safe_load((COLLECTOR_CONFIG / "prometheus-server.yml").read_text())
    storage: dict[str, object] = cfg["storage"]
    return storage


def test_prometheus_server_config_is_valid(promtool_binary: Path) -> None:
    """The shipped Prometheus settings load (with their rule file) and keep a window."""
    cp = subprocess.run(
        [str(promtool_binary), "check", "config", str(COLLECTOR_CONFIG / "prometheus-server.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert _prometheus_storage()["tsdb"]["out_of_order_time_window"] == "30m"  # type: ignore[index]


def _telemetry_sum(collectors: list[Collector], name: str, **labels: str) -> float:
    return sum(metric_sum(c.telemetry(), name, **labels) for c in collectors)


def test_two_gateways_lose_and_reject_nothing(
    otelcol_binary: Path, prometheus_binary: Path, tmp_path: Path
) -> None:
    downstream = Downstream(otelcol_binary, tmp_path)
    prometheus = Prometheus(prometheus_binary, tmp_path, storage=_prometheus_storage())
    grpc_port, http_port = free_port(), free_port()
    gateways: list[Collector] = []
    agents: list[Collector] = []
    apps: list[Proc] = []
    stop_file = tmp_path / "stop"
    with DnsStub({NAME: list(GATEWAY_ADDRESSES)}) as dns:
        try:
            downstream.start()
            prometheus.start()
            for i, host in enumerate(GATEWAY_ADDRESSES):
                env = collector_env(
                    tmp_path / f"gateway{i}",
                    MODELOTEL_COLLECTOR_HOST=host,
                    MODELOTEL_COLLECTOR_GRPC_PORT=str(grpc_port),
                    MODELOTEL_COLLECTOR_HTTP_PORT=str(http_port),
                    MODELOTEL_COLLECTOR_TRACES_ENDPOINT=downstream.endpoint,
                    MODELOTEL_COLLECTOR_LOGS_ENDPOINT=downstream.endpoint,
                    MODELOTEL_COLLECTOR_PROMETHEUS_ENDPOINT=prometheus.remote_write_url,
                )
                configs: list[Path | str] = [
                    COLLECTOR_CONFIG / "base.yaml",
                    COLLECTOR_CONFIG / "gateway.yaml",
                ]
                if i == 0:
                    configs.append(LAGGING_BATCH)
                gateways.append(
                    Collector(otelcol_binary, configs, env, tmp_path, name=f"gateway{i}")
                )
            for g in gateways:
                g.start()

            shared = f"dns://127.0.0.1:{dns.port}/{NAME}:{grpc_port}"
            first, second = (f"{h}:{grpc_port}" for h in GATEWAY_ADDRESSES)
            endpoints = [shared, shared, first]

            def agent(i: int, endpoint: str) -> Collector:
                env = collector_env(
                    tmp_path / f"agent{i}",
                    MODELOTEL_GATEWAY_ENDPOINT=endpoint,
                    MODELOTEL_GATEWAY_INSECURE="true",
                    MODELOTEL_AGENT_HOST_NAME=f"node-{i}",
                )
                if agents and len(agents) > i:  # a restart: same ports and queue directory
                    env = {**agents[i].env, "MODELOTEL_GATEWAY_ENDPOINT": endpoint}
                return Collector(
                    otelcol_binary, [COLLECTOR_CONFIG / "agent.yaml"], env, tmp_path,
                    name=f"agent{i}-{int(time.monotonic() * 1000)}",
                )  # fmt: skip

            for i, endpoint in enumerate(endpoints):
                agents.append(agent(i, endpoint))
                agents[i].start()
            for i, a in enumerate(agents):
                apps.append(
                    start_model_app(
                        tmp_path,
                        [
                            "--model", f"fleet-r{i}", "--rate", "15",
                            "--stop-file", str(stop_file),
                            "--summary", str(tmp_path / f"summary{i}.json"),
                        ],
                        {
                            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:"
                            + a.env["MODELOTEL_COLLECTOR_GRPC_PORT"],
                            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
                            "OTEL_BSP_SCHEDULE_DELAY": "200",
                            "OTEL_BLRP_SCHEDULE_DELAY": "200",
                            "OTEL_SERVICE_NAME": f"fleet-r{i}",
                        },
                    )
                )
            time.sleep(RUN_SECONDS / 2)
            # the third agent moves from the first gateway to the second
            switched = agents[2]
            before_switch = switched.telemetry()
            assert switched.stop() == 0
            agents[2] = agent(2, second)
            agents[2].start()
            time.sleep(RUN_SECONDS / 2)
            stop_file.write_text("stop")
            for app in apps:
                assert app.wait(timeout=90) == 0, app.tail()
            summaries = [
                json.loads((tmp_path / f"summary{i}.json").read_text()) for i in range(REPLICAS)
            ]
            assert all(s["flushed"] and s["calls"] > 50 for s in summaries), summaries

            # each replica's count reaches Prometheus exactly
            def counted(i: int) -> float:
                sel = f'ml_prediction_calls_total{{ml_model_name="fleet-r{i}"}}'
                result = prometheus.query(f"max(max_over_time({sel}[10m]))")["data"]["result"]
                return float(result[0]["value"][1]) if result else -1.0

            def all_counted() -> bool:
                return all(counted(i) == s["calls"] for i, s in enumerate(summaries))

            wait_until(all_counted, 60, what="every replica's calls in Prometheus")

            # spans and payload records: each exactly once
            def per_model(kind: str) -> dict[str, int]:
                counts: dict[str, int] = {}
                rows = downstream.spans() if kind == "spans" else downstream.logs()
                for r in rows:
                    if kind == "payloads" and r.get("eventName") != A.EVENT_PREDICTION_PAYLOAD:
                        continue
                    model = r["_attrs"].get(A.ML_MODEL_NAME, "")
                    counts[model] = counts.get(model, 0) + 1
                return counts

            want = {f"fleet-r{i}": s["calls"] for i, s in enumerate(summaries)}
            def all_once() -> bool:
                return per_model("spans") == want and per_model("payloads") == want

            wait_until(all_once, 60, what="every span and payload record, once")

            # every collector's books balance once the queues are empty
            def balanced() -> bool:
                sent = _telemetry_sum(gateways, "otelcol_exporter_sent_metric_points")
                accepted = _telemetry_sum(gateways, "otelcol_receiver_accepted_metric_points")
                queued = _telemetry_sum(gateways + agents, "otelcol_exporter_queue_size")
                return sent == accepted and queued == 0

            wait_until(balanced, 60, what="gateways: metric points in == out")
            both = agents[:2]
            for signal in ("spans", "metric_points", "log_records"):
                got = _telemetry_sum(both, f"otelcol_receiver_accepted_{signal}")
                assert got > 0, signal
                assert _telemetry_sum(both, f"otelcol_exporter_sent_{signal}") == got, signal
            for c in (*gateways, *agents):
                t = c.telemetry()
                for signal in ("spans", "metric_points", "log_records"):
                    assert metric_sum(t, f"otelcol_receiver_refused_{signal}") == 0, c.name
                    assert metric_sum(t, f"otelcol_exporter_send_failed_{signal}") == 0, c.name
                    assert metric_sum(t, f"otelcol_exporter_enqueue_failed_{signal}") == 0
            for signal in ("spans", "metric_points"):
                assert metric_sum(before_switch, f"otelcol_exporter_send_failed_{signal}") == 0
            # the balancing agents used both gateways
            for g in gateways:
                assert metric_sum(g.telemetry(), "otelcol_receiver_accepted_metric_points") > 0

            # Prometheus rejected nothing, and the out-of-order window was needed
            own = scrape(f"{prometheus.url}/metrics")
            for rejected in (
                "prometheus_tsdb_out_of_order_samples_total",
                "prometheus_tsdb_out_of_bound_samples_total",
                "prometheus_tsdb_too_old_samples_total",
            ):
                assert any(n == rejected for n, _, _ in own), f"Prometheus has no {rejected}"
                assert metric_sum(own, rejected) == 0, rejected
            writes = [
                (lab.get("code"), v)
                for n, lab, v in own
                if n == "prometheus_http_requests_total" and lab.get("handler") == "/api/v1/write"
            ]
            assert writes, "no remote write reached Prometheus"
            assert all(code == "204" for code, v in writes if v > 0), writes
            assert metric_sum(own, "prometheus_tsdb_head_out_of_order_samples_appended_total") > 0
        finally:
            stop_file.write_text("stop")
            kill_quietly(*apps, *agents, *gateways, downstream, prometheus)
