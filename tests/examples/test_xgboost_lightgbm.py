"""examples/xgboost_lightgbm: XGBoost and LightGBM through their Booster and scikit-learn APIs,
with DataFrame and numpy inputs; spans and statistics at the real collector and Prometheus."""

from __future__ import annotations

from typing import Any

import pytest
from examples_support import last_json, run_example
from harness import Stack, wait_until

pytestmark = pytest.mark.integration

MODELS = {"xgb-booster": "inplace_predict", "xgb-sklearn": "predict_proba",
          "lgb-booster": "predict", "lgb-sklearn": "predict_proba"}
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age"]
CALLS, ROWS = 5, 40  # per input kind (DataFrame, numpy) and model


def _value(stack: Stack, expr: str) -> float:
    result = stack.prometheus.query(expr).get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else -1.0


def test_boosted_models_booster_and_sklearn_apis_on_frames_and_arrays(stack: Stack) -> None:
    cp = run_example(stack, "xgboost_lightgbm", ["--calls", str(CALLS), "--rows", str(ROWS)])
    summary = last_json(cp.stdout)
    assert set(summary) == set(MODELS)
    for name, method in MODELS.items():
        assert summary[name] == {"calls": 2 * CALLS, "rows": 2 * CALLS * ROWS,
                                 "method": method, "unchanged": True}

    def spans() -> list[dict[str, Any]]:
        got = [s for s in stack.downstream.spans()
               if s["_resource"].get("service.name") == "boosted-models"]
        return got if len(got) >= 2 * CALLS * len(MODELS) else []

    got = wait_until(spans, 30, what="the boosted models' spans")
    assert len(got) == 2 * CALLS * len(MODELS)
    for name, method in MODELS.items():
        mine = [s for s in got if s["name"] == f"predict {name}"]
        assert len(mine) == 2 * CALLS
        assert {s["_attrs"]["ml.model.method"] for s in mine} == {method}
        assert {s["_attrs"]["ml.input.rows"] for s in mine} == {ROWS}

    for name in MODELS:
        sel = f'ml_model_name="{name}",ml_model_version="1"'
        wait_until(lambda sel=sel: _value(stack, f"ml_prediction_rows_total{{{sel}}}")
                   == 2 * CALLS * ROWS, 30, what=f"{name}'s rows in Prometheus")
        # numpy rows are named from the baseline: every feature counts the frame and array rows
        for feature in FEATURES:
            assert _value(stack, f'ml_feature_count_total{{{sel},ml_feature="{feature}"}}') \
                == 2 * CALLS * ROWS, (name, feature)
        assert _value(stack, f'sum(ml_feature_bin_total{{{sel}}})') \
            == 2 * CALLS * ROWS * len(FEATURES)
        # the same rows served as a frame and as an array: drift is computed on both alike
        assert _value(stack, f'count(ml_feature_drift{{{sel},ml_drift_method="psi"}})') \
            == len(FEATURES)
        assert _value(stack, f'ml_telemetry_skipped_total{{{sel}}}') in (-1.0, 0.0)
