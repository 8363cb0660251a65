"""Units of the exported metrics: part of the telemetry contract.

The OTel -> Prometheus translation appends a suffix for the unit ("_seconds" for "s",
"_ratio" for a gauge with unit "1") and drops annotations in braces ("{score}"). A drift
score or the always-1 info gauge is not a ratio, so those carry an annotation;
collector-config/ and the dashboards are keyed on the resulting names
(tests/integration/test_dashboards_and_rules.py checks them against a real Prometheus).
"""

from __future__ import annotations

import numpy as np

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import Baseline
from modelotel.testing import capture


def test_units_of_info_drift_and_ratio_metrics() -> None:
    rng = np.random.default_rng(3)
    train = rng.normal(size=(400, 2))
    baseline = Baseline.from_data(train, feature_names=["a", "b"], outputs=train[:, 0])

    @modelotel.instrument(model="units", version="2", baseline=baseline)
    def predict(x: np.ndarray) -> np.ndarray:
        return x[:, 0] + 1.0

    with capture() as cap:
        predict(rng.normal(size=(200, 2)))
        points = cap.collect()

    units = {p.name: p.unit for p in points if p.attributes.get(A.ML_MODEL_NAME) == "units"}
    assert units[A.METRIC_MODEL_INFO] == "{info}"
    assert units[A.METRIC_FEATURE_DRIFT] == "{score}"
    assert units[A.METRIC_OUTPUT_DRIFT] == "{score}"
    assert units[A.METRIC_PREDICTION_DURATION] == "s"
    assert units[A.METRIC_FEATURE_COUNT] == "{value}"
    # only a real ratio may have unit "1" (it becomes *_ratio in Prometheus)
    assert [name for name, unit in units.items() if unit == "1"] == []
    drift = [p for p in points if p.name == A.METRIC_FEATURE_DRIFT
             and p.attributes.get(A.ML_MODEL_NAME) == "units"]
    assert {p.attributes[A.ML_FEATURE] for p in drift} == {"a", "b"}
    assert all(p.value >= 0.0 for p in drift)
