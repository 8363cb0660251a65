"""Prediction-aware tail sampling (tail-sampling.yaml) through the real collector.

A workload with known counts (sampling_app.py: failed, check-firing, slow and ordinary
predictions of two models, each prediction inside an application span) goes through the
sampler on the gateway, or on the agent (agent-tail-sampling.yaml). Every failed, check-firing
and slow prediction's trace must arrive whole; the ordinary ones within binomial bounds of the
configured share; a churn call that is slow only by fraud's threshold counts as ordinary (the
thresholds are per model); payload records are not tail-sampled (every one arrives).
"""

from __future__ import annotations

from collections import defaultdict
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
    metric_sum,
    run_model_app,
    wait_until,
)
from scipy.stats import binom

from modelotel import attributes as A  # noqa: N812

pytestmark = pytest.mark.integration

SHARE = 0.10  # MODELOTEL_TAIL_SAMPLE_PERCENT=10
ORDINARY = 600  # per model
FAILED = CHECKS = 15
SLOW = 6
MEDIUM = 30
#: the bounds' false-alarm rate per assertion (both tails together)
ALPHA = 1e-6
TS = "otelcol_processor_tail_sampling_"  # the sampler's own metrics
SAMPLER_ENV = {
    "MODELOTEL_TAIL_SAMPLE_PERCENT": str(int(SHARE * 100)),
    "MODELOTEL_TAIL_SLOW_PER_MODEL": "fraud=60ms",
    "MODELOTEL_TAIL_SLOW_DEFAULT": "300ms",
    # decisions come 1 s after the root span (the application span) arrives; this is the bound
    "MODELOTEL_TAIL_DECISION_WAIT": "5s",
}
AGENT_RESOURCE_ENV = {
    "MODELOTEL_AGENT_HOST_NAME": "node-a1",
    "MODELOTEL_AGENT_RESOURCE_ATTRIBUTES": "cloud.provider=test-cloud,cloud.region=eu-test-1,"
    "service.name=not-the-sdks",
}
APP_ARGS = [
    "--ordinary", str(ORDINARY), "--failed", str(FAILED), "--checks", str(CHECKS),
    "--slow", str(SLOW), "--slow-ms", "fraud=120,churn=450",
    "--medium", str(MEDIUM), "--medium-ms", "120",
]  # fmt: skip
TOTAL = 2 * (ORDINARY + FAILED + CHECKS + SLOW) + MEDIUM


def _binomial_bounds(n: int, p: float) -> tuple[int, int]:
    return int(binom.ppf(ALPHA / 2, n, p)), int(binom.isf(ALPHA / 2, n, p))


def _traces(downstream: Downstream) -> dict[str, list[dict[str, Any]]]:
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in downstream.spans():
        by_trace[s["traceId"]].append(s)
    return by_trace


def _start(
    otelcol_binary: Path, stack: Stack, tmp_path: Path, layout: str
) -> tuple[Downstream, Collector, Collector | None, Collector]:
    """Downstream + gateway (+ agent); returns them and the collector that samples."""
    downstream = Downstream(otelcol_binary, tmp_path)
    gateway_configs = [COLLECTOR_CONFIG / "base.yaml", COLLECTOR_CONFIG / "gateway.yaml"]
    if layout == "gateway":
        gateway_configs.append(COLLECTOR_CONFIG / "tail-sampling.yaml")
    gateway_env = collector_env(
        tmp_path / "gateway",
        MODELOTEL_COLLECTOR_TRACES_ENDPOINT=downstream.endpoint,
        MODELOTEL_COLLECTOR_LOGS_ENDPOINT=downstream.endpoint,
        MODELOTEL_COLLECTOR_PROMETHEUS_ENDPOINT=stack.prometheus.remote_write_url,
        **SAMPLER_ENV,
    )
    gateway = Collector(otelcol_binary, gateway_configs, gateway_env, tmp_path, name="gateway")
    agent = None
    if layout == "agent":
        agent_env = collector_env(
            tmp_path / "agent",
            MODELOTEL_GATEWAY_ENDPOINT=f"127.0.0.1:{gateway_env['MODELOTEL_COLLECTOR_GRPC_PORT']}",
            MODELOTEL_GATEWAY_INSECURE="true",
            **SAMPLER_ENV,
            **AGENT_RESOURCE_ENV,
        )
        agent = Collector(
            otelcol_binary,
            [
                COLLECTOR_CONFIG / "agent.yaml",
                COLLECTOR_CONFIG / "tail-sampling.yaml",
                COLLECTOR_CONFIG / "agent-tail-sampling.yaml",
            ],
            agent_env,
            tmp_path,
            name="agent",
        )
    downstream.start()
    gateway.start()
    if agent is not None:
        agent.start()
    return downstream, gateway, agent, agent if agent is not None else gateway


@pytest.mark.parametrize("layout", ["gateway", "agent"])
def test_tail_sampling_keeps_every_interesting_trace_and_a_share_of_the_rest(
    otelcol_binary: Path, stack: Stack, tmp_path: Path, layout: str
) -> None:
    downstream, gateway, agent, sampler = _start(otelcol_binary, stack, tmp_path, layout)
    try:
        entry = Stack(tmp_path, downstream, stack.prometheus, sampler)
        env = entry.otlp_env("grpc")
        env["OTEL_SERVICE_NAME"] = f"sampling-{layout}"
        env["OTEL_BSP_MAX_QUEUE_SIZE"] = "20000"  # the SDK drops spans past its queue
        out = run_model_app(tmp_path, APP_ARGS, env, script="sampling_app.py", timeout=240)
        assert out["flushed"]
        ids: dict[str, dict[str, list[str]]] = out["ids"]
        assert sum(len(v) for kinds in ids.values() for v in kinds.values()) == TOTAL

        # every payload record arrives: the sampler is on the traces pipeline only
        def payloads() -> int:
            return sum(
                1 for r in downstream.logs() if r.get("eventName") == A.EVENT_PREDICTION_PAYLOAD
            )

        wait_until(lambda: payloads() >= TOTAL, 60, what="every payload record")

        # every trace decided (2 spans each: the application span and the prediction)
        def decided() -> float:
            t = sampler.telemetry()
            return metric_sum(t, TS + "global_count_traces_sampled")

        wait_until(lambda: decided() >= TOTAL, 90, what=f"{TOTAL} sampling decisions")
        telemetry = sampler.telemetry()
        assert decided() == TOTAL
        assert metric_sum(telemetry, TS + "sampling_policy_evaluation_error") == 0
        assert metric_sum(telemetry, TS + "sampling_trace_dropped_too_early") == 0
        # OTTL errors under error_mode: ignore are logged, not counted in the metric above
        assert "failed to eval condition" not in sampler.log()
        kept = int(
            metric_sum(
                telemetry,
                TS + "global_count_traces_sampled",
                sampled="true",
            )
        )
        wait_until(lambda: len(_traces(downstream)) >= kept, 30, what=f"{kept} kept traces")

        traces = _traces(downstream)
        assert len(traces) == kept
        by_prediction: dict[str, dict[str, Any]] = {}
        for spans in traces.values():
            # a kept trace arrives whole, each span once
            assert sorted(s["name"] for s in spans)[0] == "handle request", spans
            assert len(spans) == 2, spans
            predict = next(s for s in spans if s["name"].startswith("predict "))
            by_prediction[predict["_attrs"][A.ML_PREDICTION_ID]] = predict

        for model in ("fraud", "churn"):
            for kind in ("failed", "checks", "slow"):
                missing = [i for i in ids[model][kind] if i not in by_prediction]
                assert not missing, f"{layout}: {model} {kind}: {len(missing)} traces dropped"
        if layout == "agent":
            # the agent adds the host's attributes; the SDK's own (service.name) win
            for spans in traces.values():
                for s in spans:
                    assert s["_resource"]["host.name"] == "node-a1"
                    assert s["_resource"]["cloud.region"] == "eu-test-1"
                    assert s["_resource"]["service.name"] == "sampling-agent"
        failed = by_prediction[ids["fraud"]["failed"][0]]
        assert failed["_attrs"][A.ERROR_TYPE] == "ValueError"
        checked = by_prediction[ids["churn"]["checks"][0]]
        assert checked["_attrs"][A.ML_CHECKS_FIRED] == [A.CHECK_OUTPUT_NONFINITE]

        ordinary = ids["fraud"]["ordinary"] + ids["churn"]["ordinary"]
        kept_ordinary = sum(1 for i in ordinary if i in by_prediction)
        low, high = _binomial_bounds(len(ordinary), SHARE)
        assert low <= kept_ordinary <= high, (layout, kept_ordinary, (low, high))
        # churn at 120 ms: above fraud's 60 ms threshold, below churn's (the 300 ms default)
        kept_medium = sum(1 for i in ids["churn"]["medium"] if i in by_prediction)
        low, high = _binomial_bounds(MEDIUM, SHARE)
        assert low <= kept_medium <= high, (layout, kept_medium, (low, high))
        assert kept == kept_ordinary + kept_medium + 2 * (FAILED + CHECKS + SLOW)
    finally:
        kill_quietly(agent, gateway, downstream)
