"""modelotel.testing.capture(): in-memory providers for modelotel only, restored on exit."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from opentelemetry import trace

import modelotel
from modelotel import attributes as tn
from modelotel._runtime import runtime
from modelotel._serving import DURATION_BUCKETS
from modelotel.testing import capture


def test_capture_installs_and_restores_providers() -> None:
    before = runtime.providers()
    gen = runtime.generation
    with capture() as cap:
        assert runtime.tracer_provider() is cap.tracer_provider
        assert runtime.meter_provider() is cap.meter_provider
        assert runtime.logger_provider() is cap.logger_provider
        assert runtime.generation > gen
        # the application's global provider is untouched
        assert trace.get_tracer_provider() is not cap.tracer_provider
    assert runtime.providers() == before


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
            tn.ML_MODEL_RUNBOOK_URL: "",
            tn.ML_MODEL_TASK: "regression",
            tn.ML_MODEL_FRAMEWORK: "",
            tn.ML_MODEL_METHOD: "",
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


def test_generation_change_on_the_same_provider_keeps_exporting() -> None:
    # configure() attaching to existing providers and a fork both bump the generation
    # without changing the MeterProvider: the instruments must not be re-created (the SDK
    # would drop the new callbacks) and the counts must go on.
    @modelotel.instrument(model="cap-gen")
    def predict(x: list[int]) -> int:
        return len(x)

    with capture() as cap:
        predict([1])
        runtime.bump_generation()
        predict([1, 2])
        runtime.bump_generation()
        attrs = {tn.ML_MODEL_NAME: "cap-gen"}
        assert cap.metric(tn.METRIC_PREDICTION_CALLS, **attrs).value == 2
        assert cap.metric(tn.METRIC_PREDICTION_ROWS, **attrs).value == 3
        assert cap.metric(tn.METRIC_PREDICTION_DURATION, **attrs).count == 2
        assert len(cap.spans()) == 2


def test_nested_captures_report_to_the_current_one_only() -> None:
    @modelotel.instrument(model="cap-nested")
    def predict(x: list[int]) -> int:
        return len(x)

    attrs = {tn.ML_MODEL_NAME: "cap-nested"}
    with capture() as outer:
        predict([1])
        with capture() as inner:
            predict([1, 2])
            # the outer provider is not current: it reports nothing meanwhile
            assert [p for p in outer.collect() if p.name.startswith("ml.prediction")] == []
            assert inner.metric(tn.METRIC_PREDICTION_CALLS, **attrs).value == 1
        predict([1, 2, 3])
        # the outer provider is current again; the serving totals are process-wide and
        # restarted when the inner capture began: the inner call and this one
        assert outer.metric(tn.METRIC_PREDICTION_CALLS, **attrs).value == 2
        assert outer.metric(tn.METRIC_PREDICTION_ROWS, **attrs).value == 5
        # the inner call's duration went to the inner capture, which collected it
        assert outer.metric(tn.METRIC_PREDICTION_DURATION, **attrs).count == 1
        assert [s.attributes[tn.ML_INPUT_ROWS] for s in outer.spans()] == [1, 3]
        assert [s.attributes[tn.ML_INPUT_ROWS] for s in inner.spans()] == [2]


def test_model_called_before_a_real_provider_keeps_its_counts() -> None:
    # a call while no provider collects (the API's proxy): kept in process, then exported
    @modelotel.instrument(model="cap-early")
    def predict(x: list[int]) -> int:
        return len(x)

    runtime.set_providers()  # the global providers: the API's proxies in this test process
    predict([1, 2])
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    runtime.set_providers(mp=MeterProvider(metric_readers=[reader]))
    try:
        predict([1])
        data = reader.get_metrics_data()
        assert data is not None
        values = {
            m.name: p
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
            if p.attributes.get(tn.ML_MODEL_NAME) == "cap-early"
        }
        assert values[tn.METRIC_PREDICTION_CALLS].value == 2
        assert values[tn.METRIC_PREDICTION_ROWS].value == 3
        assert values[tn.METRIC_PREDICTION_DURATION].count == 2
    finally:
        runtime.set_providers()


def test_metrics_can_be_read_after_the_block() -> None:
    @modelotel.instrument(model="cap-after")
    def predict(x: list[int]) -> int:
        return len(x)

    with capture() as cap:
        predict([1, 2])
    predict([1])  # after the block: not captured
    attrs = {tn.ML_MODEL_NAME: "cap-after"}
    assert cap.metric(tn.METRIC_PREDICTION_ROWS, **attrs).value == 2
    assert cap.metric(tn.METRIC_PREDICTION_DURATION, **attrs).count == 1
    assert len(cap.spans()) == 1


def test_model_info_carries_the_baseline_hash_and_framework() -> None:
    import numpy as np

    from modelotel.stats.baseline import Baseline

    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 3))
    baseline = Baseline.from_data(train, feature_names=["a", "b", "c"])

    class Model:
        __module__ = "sklearn.linear_model._logistic"

        def predict(self, x: object) -> list[int]:
            return [0]

    model = modelotel.wrap(Model(), model="cap-baseline", version="2", baseline=baseline)
    with capture() as cap:
        model.predict(rng.normal(size=(1, 3)))
        info = cap.metric(tn.METRIC_MODEL_INFO, **{tn.ML_MODEL_NAME: "cap-baseline"})
    assert info.attributes[tn.ML_BASELINE_HASH] == baseline.hash
    assert info.attributes[tn.ML_BASELINE_HASH].startswith("sha256:")
    assert info.attributes[tn.ML_MODEL_FRAMEWORK] == "sklearn"


def test_threads_keep_calling_while_capture_swaps_providers() -> None:
    @modelotel.instrument(model="host-swap")
    def predict(x: np.ndarray) -> np.ndarray:
        return x[:, 0]

    stop = threading.Event()
    failures: list[BaseException] = []
    results: list[int] = [0]

    def worker() -> None:
        x = np.ones((4, 3))
        while not stop.is_set():
            try:
                r = predict(x)
                assert r.shape == (4,)
                results[0] += 1
            except BaseException as exc:  # collected for the assertion
                failures.append(exc)
                return

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(15):
            with capture() as cap:
                predict(np.ones((2, 3)))
                cap.collect()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert results[0] > 0


def test_looking_twice_sees_the_same_window_and_a_new_call_closes_it() -> None:
    import modelotel
    from modelotel import attributes as A  # noqa: N812

    @modelotel.instrument(model="capture-window", feature_names=["a", "b"])
    def predict(x: Any) -> Any:
        return x[:, 0]

    with capture() as cap:
        predict(np.array([[1.0, 10.0], [3.0, 30.0]]))
        a = cap.metric(A.METRIC_FEATURE_MEAN, **{A.ML_FEATURE: "a"}).value
        b = cap.metric(A.METRIC_FEATURE_MEAN, **{A.ML_FEATURE: "b"}).value  # a second look
        assert (a, b) == (2.0, 20.0)
        predict(np.array([[5.0, 50.0]]))
        assert cap.metric(A.METRIC_FEATURE_MEAN, **{A.ML_FEATURE: "a"}).value == 5.0
        assert cap.metric(A.METRIC_FEATURE_MEAN, **{A.ML_FEATURE: "b"}).value == 50.0


def test_health_counters_start_at_zero_in_each_block() -> None:
    import modelotel
    from modelotel import attributes as A  # noqa: N812

    @modelotel.instrument(model="capture-skips")
    def predict(x: Any) -> int:
        return 1

    def skipped(cap: Any) -> float:
        return sum(p.value for p in cap.collect() if p.name == A.METRIC_TELEMETRY_SKIPPED
                   and p.attributes.get(A.ML_TELEMETRY_REASON) == "stats.none_input")

    with capture() as cap:
        predict(None)
        assert skipped(cap) == 1
    with capture() as cap:
        assert skipped(cap) == 0
        predict(None)
        assert skipped(cap) == 1
