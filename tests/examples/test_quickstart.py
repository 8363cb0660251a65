"""examples/quickstart: the README's quickstart exports through the real collector, and falls
back to the console when no collector answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from examples_support import EXAMPLES, run_example
from harness import REPO, Stack, free_port, wait_until

pytestmark = pytest.mark.integration


def _value(stack: Stack, expr: str) -> float:
    result = stack.prometheus.query(expr).get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else -1.0


def test_quickstart_spans_and_metrics_reach_the_collector(stack: Stack) -> None:
    cp = run_example(stack, "quickstart")
    assert "No collector" not in cp.stdout  # the collector answered: no console fallback

    def spans() -> list[dict[str, object]]:
        got = [s for s in stack.downstream.spans() if s["_resource"].get("service.name")
               == "quickstart"]
        return got if len(got) >= 40 else []

    got = wait_until(spans, 30, what="the quickstart's 40 spans at the backend")
    assert len(got) == 40
    assert {s["name"] for s in got} == {"predict churn"}
    methods = sorted(str(s["_attrs"]["ml.model.method"]) for s in got)
    assert methods == ["predict"] * 20 + ["predict_proba"] * 20
    assert {s["_attrs"]["ml.input.rows"] for s in got} == {50}

    # job = the service name: the fastapi example serves a model of the same name and
    # version into the same session's Prometheus
    sel = '{job="quickstart",ml_model_name="churn",ml_model_version="1"}'
    wait_until(lambda: _value(stack, f"ml_prediction_calls_total{sel}") == 40, 30,
               what="40 calls in Prometheus")
    # 20 predict calls of 50 rows feed the statistics (predict_proba is not the primary one)
    assert _value(stack, f"ml_prediction_rows_total{sel}") == 40 * 50
    assert _value(stack, 'sum(ml_feature_bin_total{job="quickstart",ml_model_name="churn",'
                         'ml_feature="tenure"})') == 20 * 50
    names = stack.prometheus.metric_names()
    assert {"ml_feature_drift", "ml_output_bin_total",
            "ml_telemetry_overhead_seconds_total"} <= names


def test_quickstart_without_a_collector_prints_to_the_console() -> None:
    env = dict(os.environ)
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # nothing listens
    cp = subprocess.run([sys.executable, str(EXAMPLES / "quickstart" / "main.py")], env=env,
                        capture_output=True, text=True, timeout=120, check=False)
    assert cp.returncode == 0, cp.stderr
    first = cp.stdout.splitlines()[0]
    assert first.startswith("No collector at http://127.0.0.1:")
    assert first.endswith("spans and metrics go to the console instead.")
    assert cp.stdout.count('"name": "predict churn"') == 40  # ConsoleSpanExporter's JSON
    assert '"name": "ml.prediction.calls"' in cp.stdout


def test_run_example_script_runs_the_quickstart_and_shows_what_arrived(
    otelcol_binary: Path, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env.update(MODELOTEL_DEMO_SKIP_INSTALL="1", MODELOTEL_OTELCOL=str(otelcol_binary),
               MODELOTEL_DEMO_DIR=str(tmp_path / "demo"))
    cp = subprocess.run(["bash", str(REPO / "examples" / "run_example.sh"), "quickstart"],
                        env=env, capture_output=True, text=True, timeout=240, check=False,
                        stdin=subprocess.DEVNULL)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "spans: 40 from 1 process(es)" in cp.stdout
    assert "      40  predict churn" in cp.stdout
    assert "series  ml_prediction_calls_total" in cp.stdout
    assert (tmp_path / "demo" / "backend" / "traces.jsonl").stat().st_size > 0
