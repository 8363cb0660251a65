"""examples/celery: a prefork Celery worker (modelotel configured in its main process, before
the fork) scoring tasks; one exporter per child process, nothing lost or sent twice."""

from __future__ import annotations

from typing import Any

import pytest
from examples_support import last_json, run_example
from harness import Stack, wait_until

pytestmark = pytest.mark.integration

TASKS, ROWS = 40, 200


def _value(stack: Stack, expr: str) -> float:
    result = stack.prometheus.query(expr).get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else -1.0


def test_celery_prefork_children_each_export_every_task_once(stack: Stack) -> None:
    summary = last_json(run_example(stack, "celery", ["--tasks", str(TASKS),
                                                      "--rows", str(ROWS)]).stdout)
    assert summary["tasks"] == TASKS
    assert summary["worker_rc"] == 0
    children = len(summary["pids"])
    assert children == 2  # one task at a time per child, 40 tasks: both children worked

    def spans() -> list[dict[str, Any]]:
        got = [s for s in stack.downstream.spans()
               if s["_resource"].get("service.name") == "celery-scoring"]
        return got if len(got) >= TASKS else []

    got = wait_until(spans, 30, what="the tasks' spans")
    # exactly the predictions the tasks returned: none lost, none exported twice
    assert sorted(s["_attrs"]["ml.prediction.id"] for s in got) == summary["prediction_ids"]
    # each child process under its own instance id; the worker's main process sent nothing
    assert len({s["_resource"]["service.instance.id"] for s in got}) == children

    sel = '{ml_model_name="offline-churn",ml_model_version="1"}'
    wait_until(lambda: _value(stack, f"sum(ml_prediction_calls_total{sel})") == TASKS, 30,
               what=f"{TASKS} calls in Prometheus")
    assert _value(stack, f"count(ml_prediction_calls_total{sel})") == children
    assert _value(stack, f"sum(ml_prediction_rows_total{sel})") == TASKS * ROWS
    assert _value(stack, 'sum(ml_feature_bin_total{ml_model_name="offline-churn",'
                         'ml_feature="age"})') == TASKS * ROWS
