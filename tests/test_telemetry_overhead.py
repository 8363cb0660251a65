"""``ml.telemetry.overhead``: what the calling threads spent in modelotel around predict calls
(before the function ran and after it returned), per model, in seconds."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel._runtime import runtime
from modelotel.testing import capture


def _overhead(points: list[Any], model: str) -> list[Any]:
    return [p for p in points if p.name == A.METRIC_TELEMETRY_OVERHEAD
            and p.attributes.get(A.ML_MODEL_NAME) == model]


def test_overhead_is_exported_per_model_and_excludes_the_function() -> None:
    def slow(x: Any) -> Any:
        time.sleep(0.05)
        return x

    predict = modelotel.instrument(model="overhead-slow", version="2")(slow)
    with capture() as cap:
        started = time.perf_counter()
        for _ in range(4):
            predict(np.ones((3, 2)))
        wall = time.perf_counter() - started
        first = _overhead(cap.collect(), "overhead-slow")
        predict(np.ones((3, 2)))
        second = _overhead(cap.collect(), "overhead-slow")
    assert len(first) == 1
    assert first[0].attributes == {A.ML_MODEL_NAME: "overhead-slow", A.ML_MODEL_VERSION: "2"}
    assert first[0].unit == "s"  # Prometheus: ml_telemetry_overhead_seconds_total
    # more than nothing, far less than the 200 ms the function slept (wall - 0.2 s bounds it)
    assert 0 < first[0].value <= wall - 0.2 + 1e-3
    assert second[0].value > first[0].value  # cumulative


def test_overhead_includes_the_parts() -> None:
    predict = modelotel.instrument(model="overhead-hook")(lambda x: x)
    with capture() as cap:
        predict(1.0)  # builds the monitor
        mon = runtime.models[("overhead-hook", "")]
        mon.ends = (*mon.ends, lambda prediction: time.sleep(0.03))  # a costly part of ours
        before = _overhead(cap.collect(), "overhead-hook")[0].value
        for _ in range(3):
            predict(1.0)
        after = _overhead(cap.collect(), "overhead-hook")[0].value
    assert after - before >= 3 * 0.03  # every part's sleep is counted


def test_no_point_for_a_model_never_called() -> None:
    modelotel.instrument(model="overhead-idle")(lambda x: x)
    with capture() as cap:
        assert _overhead(cap.collect(), "overhead-idle") == []
