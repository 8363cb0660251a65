"""The fleet layout: SDK -> agent (agent.yaml) -> gateway (base.yaml + gateway.yaml) -> backends."""

from __future__ import annotations

import json
from pathlib import Path

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
from model_app import CANARY_TOKEN, CANARY_VALUE

from modelotel import attributes as A  # noqa: N812

pytestmark = pytest.mark.integration

MODEL = "churn-fleet"
CALLS = 20


def test_agent_forwards_everything_through_the_gateway(
    otelcol_binary: Path, stack: Stack, tmp_path: Path
) -> None:
    downstream = Downstream(otelcol_binary, tmp_path)
    gateway_env = collector_env(
        tmp_path / "gateway",
        MODELOTEL_COLLECTOR_TRACES_ENDPOINT=downstream.endpoint,
        MODELOTEL_COLLECTOR_LOGS_ENDPOINT=downstream.endpoint,
        MODELOTEL_COLLECTOR_PROMETHEUS_ENDPOINT=stack.prometheus.remote_write_url,
    )
    gateway = Collector(
        otelcol_binary,
        [COLLECTOR_CONFIG / "base.yaml", COLLECTOR_CONFIG / "gateway.yaml"],
        gateway_env,
        tmp_path,
        name="gateway",
    )
    agent_env = collector_env(
        tmp_path / "agent",
        MODELOTEL_GATEWAY_ENDPOINT=f"127.0.0.1:{gateway_env['MODELOTEL_COLLECTOR_GRPC_PORT']}",
        MODELOTEL_GATEWAY_INSECURE="true",
    )
    agent = Collector(
        otelcol_binary, [COLLECTOR_CONFIG / "agent.yaml"], agent_env, tmp_path, name="agent"
    )
    try:
        downstream.start()
        gateway.start()
        agent.start()
        fleet = Stack(tmp_path, downstream, stack.prometheus, agent)
        summary = run_model_app(
            tmp_path, ["--model", MODEL, "--calls", str(CALLS)], fleet.otlp_env("grpc")
        )
        assert summary["calls"] == CALLS

        def arrived() -> bool:
            spans = [s for s in downstream.spans() if s["_attrs"].get(A.ML_MODEL_NAME) == MODEL]
            logs = [r for r in downstream.logs() if r["_attrs"].get(A.ML_MODEL_NAME) == MODEL]
            return len(spans) >= CALLS and len(logs) >= CALLS

        wait_until(arrived, 30, what="spans and payload records through agent and gateway")
        spans = [s for s in downstream.spans() if s["_attrs"].get(A.ML_MODEL_NAME) == MODEL]
        payloads = [
            r
            for r in downstream.logs()
            if r.get("eventName") == A.EVENT_PREDICTION_PAYLOAD
            and r["_attrs"].get(A.ML_MODEL_NAME) == MODEL
        ]
        assert len(spans) == CALLS
        assert len(payloads) == CALLS
        for r in payloads:
            text = json.dumps(r)
            assert CANARY_VALUE not in text
            assert CANARY_TOKEN not in text
            # masked at the agent, before anything left the host
            assert r["_attrs"][A.ML_PAYLOAD_INPUT_PREFIX + "api_token"] == "****"

        sel = f'ml_prediction_calls_total{{ml_model_name="{MODEL}"}}'

        def counted() -> float:
            result = stack.prometheus.query(f"sum({sel})")["data"]["result"]
            return float(result[0]["value"][1]) if result else 0.0

        wait_until(lambda: counted() == CALLS, 30, what=f"{sel} == {CALLS} via the gateway")
    finally:
        kill_quietly(agent, gateway, downstream)
