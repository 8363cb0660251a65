"""modelotel.testing.capture(): in-memory providers for modelotel only, restored on exit."""

from __future__ import annotations

import pytest
from opentelemetry import trace

import modelotel
from modelotel import _state
from modelotel import attributes as tn
from modelotel._monitor import DURATION_BUCKETS
from modelotel.testing import capture


def test_capture_installs_and_restores_providers() -> None:
    before = _state.providers()
    gen = _state.generation()
    with capture() as cap:
        assert _state.tracer_provider() is cap.tracer_provider
        assert _state.meter_provider() is cap.meter_provider
        assert _state.logger_provider() is cap.logger_provider
        assert _state.generation() > gen
        # the application's global provider is untouched
        assert trace.get_tracer_provider() is not cap.tracer_provider
    assert _state.providers() == before


def test_capture_histogram_is_a_real_histogram() -> None:
    @modelotel.instrument(model="cap-hist", version="1")
    def predict(x: int) -> int:
        return x

    with capture() as cap:
        for i in range(5):
            predict(i)
        point = cap.metric(tn.METRIC_PREDICTION_DURATION, **{tn.ML_MODEL_NAME: "cap-hist"})
        assert point.unit == "s"
        assert point.count == 5
        assert point.explicit_bounds == DURATION_BUCKETS
        assert sum(point.bucket_counts or ()) == 5
        assert point.attributes == {tn.ML_MODEL_NAME: "cap-hist", tn.ML_MODEL_VERSION: "1"}
        assert point.min is not None
        assert point.max is not None
        assert 0 <= point.min <= point.max < 1.0
        assert 0 < point.value < 5.0
        # a second collection: cumulative, nothing replayed twice
        again = cap.metric(tn.METRIC_PREDICTION_DURATION, **{tn.ML_MODEL_NAME: "cap-hist"})
        assert again.count == 5
        predict(9)
        assert (
            cap.metric(tn.METRIC_PREDICTION_DURATION, **{tn.ML_MODEL_NAME: "cap-hist"}).count == 6
        )


def test_capture_model_info_and_clear() -> None:
    @modelotel.instrument(model="cap-info", version="4", owner="team-risk", task="regression")
    def predict(x: int) -> int:
        return x

    with capture() as cap:
        predict(1)
        info = cap.metric(tn.METRIC_MODEL_INFO, **{tn.ML_MODEL_NAME: "cap-info"})
        assert info.value == 1
        assert info.attributes == {
            tn.ML_MODEL_NAME: "cap-info",
            tn.ML_MODEL_VERSION: "4",
            tn.ML_MODEL_OWNER: "team-risk",
            tn.ML_MODEL_TASK: "regression",
            tn.ML_MODEL_FRAMEWORK: "",
            tn.ML_BASELINE_HASH: "",
        }
        assert len(cap.spans()) == 1
        cap.clear()
        assert cap.spans() == []
        assert cap.logs() == []


def test_metric_lookup_errors_name_what_exists() -> None:
    with capture() as cap, pytest.raises(LookupError, match="0 data points"):
        cap.metric("ml.nothing")


def test_new_capture_starts_from_zero() -> None:
    @modelotel.instrument(model="cap-fresh")
    def predict(x: list[int]) -> int:
        return len(x)

    with capture() as cap:
        predict([1, 2, 3])
        assert cap.metric(tn.METRIC_PREDICTION_ROWS, **{tn.ML_MODEL_NAME: "cap-fresh"}).value == 3
    with capture() as cap:
        predict([1])
        assert cap.metric(tn.METRIC_PREDICTION_ROWS, **{tn.ML_MODEL_NAME: "cap-fresh"}).value == 1
        assert cap.metric(tn.METRIC_PREDICTION_CALLS, **{tn.ML_MODEL_NAME: "cap-fresh"}).value == 1
