"""examples/ray_data: Ray Data batch inference (map_batches, an actor pool of 2 replicas); each
replica exports through the real collector under its own instance id, every batch once, and
the fleet drift that Prometheus computes from their summed bin counters (lifetime form of
`modelotel rules`) equals one process's drift over all rows."""

from __future__ import annotations

from typing import Any

import pytest
from examples_support import assert_fleet_equals_one_process, last_json, run_example
from harness import Stack, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROWS, BLOCKS, BATCH = 40_000, 8, 2_500
SEL = '{job="ray-data-scoring",ml_model_name="ray-batch-scorer",ml_model_version="1"}'


def _result(stack: Stack, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = stack.prometheus.query(expr).get("data", {}).get("result", [])
    return result


def _value(stack: Stack, expr: str) -> float:
    result = _result(stack, expr)
    return float(result[0]["value"][1]) if result else -1.0


def test_ray_replicas_each_export_every_batch_once_and_fleet_drift_equals_one_process(
    stack: Stack,
) -> None:
    # periodic exports far apart (longer than the job): what the replicas scored reaches the
    # collector only through their shutdown when Ray Data releases them
    summary = last_json(run_example(stack, "ray_data", [
        "--rows", str(ROWS), "--blocks", str(BLOCKS), "--batch-size", str(BATCH)],
        env={"OTEL_METRIC_EXPORT_INTERVAL": "120000", "OTEL_BSP_SCHEDULE_DELAY": "120000"}
    ).stdout)
    assert summary["scored_rows"] == ROWS
    assert summary["row_ids_complete"]
    assert summary["max_abs_score_difference"] <= 1e-12  # the scores are the model's
    replicas = summary["replicas"]
    assert len(replicas) == 2  # 2 actors, 2 processes, both scored
    assert sum(r["rows"] for r in replicas.values()) == ROWS
    assert all(r["rows"] > 0 for r in replicas.values())
    # each replica's __del__ (modelotel.shutdown()) ran and its process exited before Ray
    # stopped: nothing it held was cut off
    assert summary["replicas_exited"]
    ids = summary["prediction_ids"]
    assert len(ids) == sum(r["batches"] for r in replicas.values())

    def spans() -> list[dict[str, Any]]:
        got = [s for s in stack.downstream.spans()
               if s["_resource"].get("service.name") == "ray-data-scoring"]
        return got if sum(s["_attrs"]["ml.input.rows"] for s in got) >= ROWS else []

    got = wait_until(spans, 60, what="every scored row in the replicas' spans")
    assert {s["name"] for s in got} == {"predict ray-batch-scorer"}
    # exactly the batches that returned rows: none lost, none exported twice
    assert sorted(s["_attrs"]["ml.prediction.id"] for s in got) == ids
    assert {s["_attrs"]["ml.prediction.id"]: s["_attrs"]["ml.input.rows"] for s in got} == \
        summary["rows_per_prediction_id"]
    # each replica process under its own instance id
    assert len({s["_resource"]["service.instance.id"] for s in got}) == 2
    assert {str(s["_resource"]["process.pid"]) for s in got} == set(replicas)

    # one series per replica; summed over them, what was scored
    wait_until(lambda: _value(stack, f"sum(ml_prediction_rows_total{SEL})") == ROWS, 60,
               what=f"{ROWS} rows in Prometheus")
    per_replica = sorted(float(s["value"][1])
                         for s in _result(stack, f"ml_prediction_rows_total{SEL}"))
    assert per_replica == sorted(float(r["rows"]) for r in replicas.values())
    calls = sorted(float(s["value"][1]) for s in _result(stack, f"ml_prediction_calls_total{SEL}"))
    assert calls == sorted(float(r["batches"]) for r in replicas.values())

    assert_fleet_equals_one_process(summary["fleet"])
