"""Durability: the backend goes away while the model keeps predicting, our collector is restarted
once during the outage, the backend comes back: every span and every payload record the model
produced is delivered, exactly once (count in = count out).

What makes it work (collector-config/base.yaml): persistent sending queues (file_storage) on
every exporter that leaves the host, retry without a time limit, and the SDK's own retry of the
few exports that hit the collector while it restarts.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import (
    COLLECTOR_CONFIG,
    Collector,
    Downstream,
    Proc,
    Prometheus,
    Stack,
    collector_env,
    kill_quietly,
    run_model_app,
    start_model_app,
    wait_until,
)

from modelotel import attributes as A  # noqa: N812

pytestmark = pytest.mark.integration

MODEL = "churn-durable"


def _span_ids(downstream: Downstream) -> Counter[str]:
    return Counter(
        s["_attrs"][A.ML_PREDICTION_ID]
        for s in downstream.spans()
        if s["_attrs"].get(A.ML_MODEL_NAME) == MODEL
    )


def _payload_ids(downstream: Downstream) -> Counter[str]:
    return Counter(
        r["_attrs"][A.ML_PREDICTION_ID]
        for r in downstream.logs()
        if r.get("eventName") == A.EVENT_PREDICTION_PAYLOAD
        and r["_attrs"].get(A.ML_MODEL_NAME) == MODEL
    )


def _outage_stack(
    otelcol_binary: Path, prometheus_binary: Path, tmp_path: Path
) -> tuple[Downstream, Prometheus, Callable[[str], Collector]]:
    """The backend, Prometheus, and a maker of our collector (base.yaml) sending to them;
    every collector it makes uses the same ports and the same queue directory on disk."""
    downstream = Downstream(otelcol_binary, tmp_path)
    prometheus = Prometheus(prometheus_binary, tmp_path)
    env = collector_env(
        tmp_path,
        MODELOTEL_COLLECTOR_TRACES_ENDPOINT=downstream.endpoint,
        MODELOTEL_COLLECTOR_LOGS_ENDPOINT=downstream.endpoint,
        MODELOTEL_COLLECTOR_PROMETHEUS_ENDPOINT=prometheus.remote_write_url,
    )

    def collector(name: str) -> Collector:
        return Collector(otelcol_binary, [COLLECTOR_CONFIG / "base.yaml"], env, tmp_path, name=name)

    return downstream, prometheus, collector


def _assert_delivered_exactly_once(downstream: Downstream, calls: int, timeout: float) -> None:
    """Every one of ``calls`` predictions arrives downstream as one span and one payload record."""
    wait_until(
        lambda: len(_span_ids(downstream)) >= calls and len(_payload_ids(downstream)) >= calls,
        timeout,
        what=f"{calls} spans and payload records downstream",
    )
    time.sleep(2)  # anything extra (duplicates) would arrive now
    spans, payloads = _span_ids(downstream), _payload_ids(downstream)
    assert sum(spans.values()) == calls, "spans: count in != count out"
    assert sum(payloads.values()) == calls, "payload records: count in != count out"
    assert len(spans) == calls
    assert set(spans) == set(payloads)


@pytest.mark.parametrize(
    "restart_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"]
)
def test_backend_outage_and_collector_restart_lose_nothing(
    otelcol_binary: Path, prometheus_binary: Path, tmp_path: Path, restart_signal: signal.Signals
) -> None:
    downstream, prometheus, new_collector = _outage_stack(
        otelcol_binary, prometheus_binary, tmp_path
    )
    collector = new_collector("otelcol-1")
    stack = Stack(tmp_path, downstream, prometheus, collector)
    stop = tmp_path / "model.stop"
    summary_path = tmp_path / "summary.json"
    model: Proc | None = None
    collector2: Collector | None = None
    try:
        downstream.start()
        prometheus.start()
        collector.start()
        model = start_model_app(
            tmp_path,
            [
                "--model", MODEL, "--rate", "25", "--stop-file", str(stop),
                "--summary", str(summary_path), "--max-seconds", "120",
            ],
            stack.otlp_env("grpc"),
        )  # fmt: skip
        wait_until(lambda: len(_span_ids(downstream)) >= 25, 60, what="the first spans downstream")

        # 1. the backend goes away; the model keeps predicting, the collector queues on disk
        downstream.stop()
        time.sleep(3)
        # 2. our collector restarts during the outage (graceful, or killed)
        collector.stop(restart_signal)
        collector2 = new_collector("otelcol-2")
        collector2.start()
        time.sleep(3)
        assert model.alive(), model.tail()
        # 3. the backend comes back; the model stops a little later and flushes
        downstream.start()
        time.sleep(2)
        stop.touch()
        assert model.wait(timeout=60) == 0, model.tail()
        summary = json.loads(summary_path.read_text())
        assert summary["flushed"] is True
        calls = summary["calls"]
        assert calls >= 100  # it kept predicting through the outage (about 9 s at 25/s)

        _assert_delivered_exactly_once(downstream, calls, timeout=90)
        # the outage really happened, and the restarted collector sent what the first one had
        # left in its persistent queues on disk
        assert downstream.runs == 2
        assert "Exporting failed" in collector.log()
        for exporter in ("otlp_grpc/traces", "otlp_grpc/payload"):
            moved = re.search(
                rf'Moved items for dispatching back to queue.*"{exporter}".*"numberOfItems": (\d+)',
                collector2.log(),
            )
            assert moved, f"{exporter}: nothing replayed from disk"
            assert int(moved.group(1)) > 0
    finally:
        stop.touch()
        kill_quietly(model, collector2, collector, downstream, prometheus)


def test_thousands_queued_on_disk_survive_a_kill(
    otelcol_binary: Path, prometheus_binary: Path, tmp_path: Path
) -> None:
    """The backend is down for the whole run: 10,000 predictions (10,000 spans + 10,000 payload
    records) wait in the collector's persistent queues; the collector is killed (SIGKILL), started
    again, the backend comes up: all of them arrive."""
    calls = 10_000
    downstream, prometheus, new_collector = _outage_stack(
        otelcol_binary, prometheus_binary, tmp_path
    )
    collector = new_collector("otelcol-1")
    collector2: Collector | None = None
    try:
        prometheus.start()
        collector.start()
        app = Stack(tmp_path, downstream, prometheus, collector)
        app_env = {
            **app.otlp_env("grpc"),
            # the SDK's own buffers must hold a burst this size (defaults: 2048 each)
            "OTEL_BSP_MAX_QUEUE_SIZE": "20000",
            "OTEL_BLRP_MAX_QUEUE_SIZE": "20000",
        }
        summary = run_model_app(tmp_path, ["--model", MODEL, "--calls", str(calls)], app_env)
        assert summary == {"calls": calls, "errors": 0, "flushed": True}
        collector.stop(signal.SIGKILL)
        collector2 = new_collector("otelcol-2")
        collector2.start()
        downstream.start()
        _assert_delivered_exactly_once(downstream, calls, timeout=120)
    finally:
        kill_quietly(collector2, collector, downstream, prometheus)
