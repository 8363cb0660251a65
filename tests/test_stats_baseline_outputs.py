"""Outputs-only baselines, and baseline errors that say what was wrong."""

from __future__ import annotations

import numpy as np
import pytest

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.stats.baseline import Baseline, BaselineError
from modelotel.testing import capture


def test_an_outputs_only_baseline_drives_output_drift() -> None:
    rng = np.random.default_rng(3)
    b = Baseline.from_data(None, outputs=rng.normal(size=2000))
    assert b.features == () and [o.name for o in b.outputs] == ["0"] and b.rows == 2000
    again = Baseline.from_data(outputs=rng.normal(size=10))
    assert again.features == ()

    shift = {"by": 0.0}

    @modelotel.instrument(model="outputs-only", baseline=b)
    def predict(X: np.ndarray) -> np.ndarray:
        return rng.normal(size=len(X)) + shift["by"]

    with capture() as cap:
        for _ in range(20):
            predict(np.zeros((50, 3, 8, 8)))  # images: no input profile, schema from this batch
        same = cap.metric(A.METRIC_OUTPUT_DRIFT, **{A.ML_DRIFT_METHOD: A.DRIFT_PSI}).value
        shift["by"] = 2.0
        for _ in range(20):
            predict(np.zeros((50, 3, 8, 8)))
        moved = cap.metric(A.METRIC_OUTPUT_DRIFT, **{A.ML_DRIFT_METHOD: A.DRIFT_PSI}).value
    assert same < 0.1 < 1.0 < moved


def test_a_saved_outputs_only_baseline_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    b = Baseline.from_data(outputs=["cat", "dog", "cat"])
    b.save(tmp_path / "b.json")
    assert Baseline.load(tmp_path / "b.json") == b


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({}, "nothing to profile"),
        ({"X": None, "outputs": None}, "nothing to profile"),
        ({"outputs": np.zeros((2, 3, 4))}, "cannot profile outputs of type ndarray: it has more"),
        ({"outputs": []}, "cannot profile outputs of type list: it is empty"),
        ({"X": object()}, "cannot profile inputs of type object: this type is not read"),
        ({"X": np.zeros((4, 2)), "outputs": np.zeros(3)},
         "outputs has 3 rows but the inputs have 4"),
        ({"outputs": np.zeros(3), "feature_names": ["a"]}, "no inputs (X) were given"),
    ],
)
def test_errors_say_what_was_wrong(kwargs: dict, says: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BaselineError) as err:
        Baseline.from_data(**kwargs)
    assert says in str(err.value)
