"""The serving metrics: in-process aggregation replayed into a real OTel histogram, exactly."""

from __future__ import annotations

import bisect
import math
import random

import pytest

from modelotel import attributes as tn
from modelotel._monitor import get_monitor
from modelotel._options import model_config
from modelotel._serving import DURATION_BUCKETS, MAX_ERROR_TYPES, OTHER_ERROR_TYPE
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
            mon.serving.record(v, 2, None)
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
            mon.serving.record(0.001, 1, f"Error{i}")
        mon.serving.record(0.001, 1, "Error0")
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


@pytest.mark.parametrize("seed", range(6))
def test_exemplars_link_buckets_to_their_last_traced_call(seed: int) -> None:
    from modelotel._runtime import runtime

    rng = random.Random(100 + seed)
    mon = get_monitor(model_config(model=f"metrics-exemplars-{seed}", version="1"))
    with capture() as cap:
        mon.refresh()
        tracer = runtime.tracer_provider().get_tracer("test")
        values: list[float] = []
        last_traced: dict[int, tuple[float, object]] = {}
        for k in range(rng.randint(1, 300)):
            v = rng.lognormvariate(-5, 2) if k % 7 else DURATION_BUCKETS[5]  # ties too
            values.append(v)
            span = None
            if rng.random() < 0.3:  # a traced (sampled) call
                span = tracer.start_span("p")
                span.end()
                last_traced[bisect.bisect_left(DURATION_BUCKETS, v)] = (v, span)
            mon.serving.record(v, 1, None, span)
        point = cap.metric(tn.METRIC_PREDICTION_DURATION, **{tn.ML_MODEL_NAME: mon.config.model})
    counts, total, lo, hi = _expected(values)  # exemplars change nothing in the histogram
    assert list(point.bucket_counts or ()) == counts
    assert (point.count, point.min, point.max) == (len(values), lo, hi)
    assert point.value == pytest.approx(total, rel=1e-9, abs=1e-12)
    got = {}
    for ex in point.data.exemplars:
        bucket = bisect.bisect_left(DURATION_BUCKETS, ex.value)
        got[bucket] = (ex.value, ex.span_id, ex.trace_id)
    want = {}
    for bucket, (v, span) in last_traced.items():
        ctx = span.get_span_context()  # type: ignore[attr-defined]
        want[bucket] = (v, ctx.span_id, ctx.trace_id)
    assert got == want


def test_no_exemplar_from_the_span_current_where_metrics_are_collected() -> None:
    from modelotel._runtime import runtime

    mon = get_monitor(model_config(model="metrics-exemplars-current", version="1"))
    with capture() as cap:
        mon.refresh()
        for v in (0.001, 0.002, 0.2):
            mon.serving.record(v, 1, None)  # untraced calls: no exemplar is theirs
        tracer = runtime.tracer_provider().get_tracer("test")
        with tracer.start_as_current_span("request that flushes metrics"):
            point = cap.metric(tn.METRIC_PREDICTION_DURATION,
                               **{tn.ML_MODEL_NAME: mon.config.model})
    assert point.count == 3
    assert list(point.data.exemplars) == []
