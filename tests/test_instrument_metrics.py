"""The serving metrics: in-process aggregation replayed into a real OTel histogram, exactly."""

from __future__ import annotations

import bisect
import math
import random

import pytest

from modelotel import attributes as tn
from modelotel._monitor import DURATION_BUCKETS, MAX_ERROR_TYPES, OTHER_ERROR_TYPE, get_monitor
from modelotel.config import model_config
from modelotel.testing import capture


def _expected(values: list[float]) -> tuple[list[int], float, float, float]:
    counts = [0] * (len(DURATION_BUCKETS) + 1)
    for v in values:
        # OTel explicit buckets are (lo, hi]: bisect_left gives that index
        counts[bisect.bisect_left(DURATION_BUCKETS, v)] += 1
    return counts, math.fsum(values), min(values), max(values)


@pytest.mark.parametrize("seed", range(5))
def test_replayed_histogram_equals_the_direct_one(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(-5, 2) for _ in range(rng.randint(1, 400))]
    values += [DURATION_BUCKETS[3], DURATION_BUCKETS[3], 0.0, 120.0]  # edges, 0, overflow
    mon = get_monitor(model_config(model=f"metrics-replay-{seed}", version="1"))
    with capture() as cap:
        mon.refresh()
        for v in values:
            mon.record(v, 2, None)
        point = cap.metric(tn.METRIC_PREDICTION_DURATION, **{tn.ML_MODEL_NAME: mon.config.model})
        counts, total, lo, hi = _expected(values)
        assert list(point.bucket_counts or ()) == counts
        assert point.count == len(values)
        assert point.min == lo
        assert point.max == hi
        assert point.value == pytest.approx(total, rel=1e-9, abs=1e-12)
        assert cap.metric(
            tn.METRIC_PREDICTION_ROWS, **{tn.ML_MODEL_NAME: mon.config.model}
        ).value == 2 * len(values)
        # a second collection adds nothing: everything was replayed exactly once
        again = cap.metric(tn.METRIC_PREDICTION_DURATION, **{tn.ML_MODEL_NAME: mon.config.model})
        assert again.count == len(values)


def test_error_types_are_capped() -> None:
    mon = get_monitor(model_config(model="metrics-error-cap"))
    with capture() as cap:
        mon.refresh()
        for i in range(MAX_ERROR_TYPES + 5):
            mon.record(0.001, 1, f"Error{i}")
        mon.record(0.001, 1, "Error0")
        errors = [
            p
            for p in cap.metrics()
            if p.name == tn.METRIC_PREDICTION_ERRORS
            and p.attributes[tn.ML_MODEL_NAME] == "metrics-error-cap"
        ]
    by_type = {p.attributes[tn.ERROR_TYPE]: p.value for p in errors}
    assert len(by_type) == MAX_ERROR_TYPES + 1
    assert by_type[OTHER_ERROR_TYPE] == 5
    assert by_type["Error0"] == 2
    assert sum(by_type.values()) == MAX_ERROR_TYPES + 6
