"""examples/mlflow_pyfunc: two versions of a model registered in a local MLflow registry, served
one after the other as pyfunc models; the telemetry at the real collector and Prometheus names
each by the registry's name and version, which the example never types."""

from __future__ import annotations

import sqlite3
from collections import Counter
from contextlib import closing
from typing import Any

import pytest
from examples_support import EXAMPLES, last_json, run_example
from harness import Stack, wait_until

pytestmark = pytest.mark.integration

NAME = "churn-mlflow"
CALLS, ROWS = 5, 40  # per served version


def _value(stack: Stack, expr: str) -> float:
    result = stack.prometheus.query(expr).get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else -1.0


def test_each_served_version_is_named_by_the_mlflow_registry(stack: Stack) -> None:
    source = (EXAMPLES / "mlflow_pyfunc" / "main.py").read_text()
    # the one wrap() call names neither the model nor its version
    assert source.count("modelotel.wrap(") == source.count("modelotel.wrap(loaded)") == 1

    cp = run_example(stack, "mlflow_pyfunc", ["--calls", str(CALLS), "--rows", str(ROWS)])
    summary = last_json(cp.stdout)
    assert summary["model"] == NAME
    assert summary["served"] == {
        v: {"loaded": f"models:/{NAME}@champion", "calls": CALLS, "rows": CALLS * ROWS,
            "unchanged": True} for v in ("1", "2")}
    # what the registry itself holds (its SQLite file, read without mlflow)
    (db,) = (stack.workdir / "mlflow_pyfunc").glob("mlflow-*/mlflow.db")
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT name, version FROM model_versions").fetchall()
    registered = {(n, str(v)) for n, v in rows}
    assert registered == {(NAME, "1"), (NAME, "2")}

    def spans() -> list[dict[str, Any]]:
        got = [s for s in stack.downstream.spans()
               if s["_resource"].get("service.name") == "mlflow-pyfunc"]
        return got if len(got) >= 2 * CALLS else []

    got = wait_until(spans, 30, what="the pyfunc model's spans")
    assert {s["name"] for s in got} == {f"predict {NAME}"}
    served = Counter((s["_attrs"]["ml.model.name"], s["_attrs"]["ml.model.version"]) for s in got)
    assert served == dict.fromkeys(registered, CALLS)
    assert {s["_attrs"]["ml.input.rows"] for s in got} == {ROWS}

    for _, version in sorted(registered):
        sel = f'ml_model_name="{NAME}",ml_model_version="{version}"'
        wait_until(lambda sel=sel: _value(stack, f"ml_prediction_rows_total{{{sel}}}")
                   == CALLS * ROWS, 30, what=f"version {version}'s rows in Prometheus")
        assert _value(stack, f"ml_prediction_calls_total{{{sel}}}") == CALLS
        assert _value(stack, f'ml_feature_count_total{{{sel},ml_feature="age"}}') == CALLS * ROWS
        assert _value(stack, f'ml_model_info{{{sel},ml_model_framework="sklearn"}}') == 1
