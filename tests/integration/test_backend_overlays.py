"""Backend overlays that send over OTLP/HTTP, pointed at a local OTLP/HTTP receiver instead of
the vendor: everything arrives, on the vendor's paths, and the delta-only vendors get delta
metrics from the cumulative_to_delta processor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import (
    COLLECTOR_CONFIG,
    Collector,
    Downstream,
    Stack,
    collector_env,
    kill_quietly,
    run_model_app,
    wait_until,
)

from modelotel import attributes as A  # noqa: N812

pytestmark = pytest.mark.integration

CALLS = 10
CUMULATIVE, DELTA = 2, 1  # AggregationTemporality in OTLP/JSON

# overlay -> (environment pointing it at the local receiver, temporality expected)
OVERLAYS: dict[str, tuple[dict[str, str], int]] = {
    "otlp": ({"OTLP_ENDPOINT": "{base}", "OTLP_AUTHORIZATION": "Bearer dummy"}, CUMULATIVE),
    "dynatrace": ({"DT_OTLP_ENDPOINT": "{base}", "DT_API_TOKEN": "dummy"}, DELTA),
    "newrelic": ({"NEW_RELIC_OTLP_ENDPOINT": "{base}", "NEW_RELIC_LICENSE_KEY": "dummy"}, DELTA),
    "datadog-agentless": (
        {
            "DD_API_KEY": "dummy",
            "DD_OTLP_TRACES_ENDPOINT": "{base}/v1/traces",
            "DD_OTLP_METRICS_ENDPOINT": "{base}/v1/metrics",
            "DD_OTLP_LOGS_ENDPOINT": "{base}/v1/logs",
        },
        DELTA,
    ),
}


def _calls_points(downstream: Downstream, model: str) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for m in downstream.metrics():
        if m["name"] != A.METRIC_PREDICTION_CALLS:
            continue
        for p in m["sum"]["dataPoints"]:
            attrs = {kv["key"]: kv["value"].get("stringValue") for kv in p.get("attributes", [])}
            if attrs.get(A.ML_MODEL_NAME) == model:
                out.append((m["sum"]["aggregationTemporality"], p))
    return out


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_delivers_every_signal(
    otelcol_binary: Path, stack: Stack, tmp_path: Path, overlay: str
) -> None:
    env_template, temporality = OVERLAYS[overlay]
    downstream = Downstream(otelcol_binary, tmp_path)
    base_url = f"http://127.0.0.1:{downstream.http_port}"
    env = collector_env(tmp_path, **{k: v.format(base=base_url) for k, v in env_template.items()})
    collector = Collector(
        otelcol_binary,
        [COLLECTOR_CONFIG / "base.yaml", COLLECTOR_CONFIG / "backends" / f"{overlay}.yaml"],
        env,
        tmp_path,
        name=f"otelcol-{overlay}",
    )
    model = f"churn-{overlay}"
    try:
        downstream.start()
        collector.start()
        app = Stack(tmp_path, downstream, stack.prometheus, collector)
        run_model_app(tmp_path, ["--model", model, "--calls", str(CALLS)], app.otlp_env("grpc"))

        def spans() -> list[dict[str, Any]]:
            return [s for s in downstream.spans() if s["_attrs"].get(A.ML_MODEL_NAME) == model]

        def payloads() -> list[dict[str, Any]]:
            return [
                r
                for r in downstream.logs()
                if r.get("eventName") == A.EVENT_PREDICTION_PAYLOAD
                and r["_attrs"].get(A.ML_MODEL_NAME) == model
            ]

        wait_until(lambda: len(spans()) >= CALLS, 30, what=f"spans via {overlay}")
        wait_until(lambda: len(payloads()) >= CALLS, 30, what=f"payload records via {overlay}")
        wait_until(lambda: _calls_points(downstream, model), 30, what=f"metrics via {overlay}")
        assert len(spans()) == CALLS
        assert len(payloads()) == CALLS
        assert all(
            r["_attrs"][A.ML_PAYLOAD_INPUT_PREFIX + "api_token"] == "****" for r in payloads()
        )
        points = _calls_points(downstream, model)
        assert {t for t, _ in points} == {temporality}
        values = [int(p["asInt"]) for _, p in points]
        if temporality == CUMULATIVE:
            assert max(values) == CALLS
        else:
            # deltas add up to the total: the series started after the collector, so
            # cumulative_to_delta passes its first point through (initial_value: auto)
            assert min(values) >= 0
            assert sum(values) == CALLS
    finally:
        kill_quietly(collector, downstream)
