"""wrap(): one primary method feeds statistics, payloads and outcomes; every method gets
``ml.model.method`` on its span; ``modelotel.last_prediction_id()`` for the caller."""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import modelotel
from modelotel import attributes as tn
from modelotel._instrument import PLAN_ATTR
from modelotel._runtime import runtime
from modelotel.testing import Captured, capture

_n = [0]


def _name(prefix: str) -> str:
    _n[0] += 1
    return f"{prefix}-{_n[0]}"


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


class Classifier:
    """scikit-learn API: labels from predict, probabilities from predict_proba."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (x[:, 0] > 0).astype(np.int64)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-x[:, 0]))
        return np.column_stack([1.0 - p, p])

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return x[:, 0] * 10.0


def _points(cap: Captured, metric: str, model: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    out = {}
    for p in cap.collect():
        if p.name == metric and p.attributes.get(tn.ML_MODEL_NAME) == model:
            key = tuple(
                sorted(
                    (k, v)
                    for k, v in p.attributes.items()
                    if k not in (tn.ML_MODEL_NAME, tn.ML_MODEL_VERSION)
                )
            )
            out[key] = p.value
    return out


def _batch(rows: int = 8) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(rows, 3))


def test_every_method_span_carries_its_method_name(cap: Captured) -> None:
    name = _name("wrap-method")
    model = modelotel.wrap(Classifier(), model=name, version="1")
    x = _batch()
    model.predict(x)
    model.predict_proba(x)
    model.decision_function(x)
    methods = [s.attributes[tn.ML_MODEL_METHOD] for s in cap.spans()]
    assert methods == ["predict", "predict_proba", "decision_function"]
    # a plain @instrument function has no method attribute (nothing to tell apart)
    fn = modelotel.instrument(model=_name("plain"))(lambda x: x)
    fn([1.0])
    assert tn.ML_MODEL_METHOD not in cap.spans()[-1].attributes


def test_torch_like_call_is_the_method(cap: Captured) -> None:
    class Module:
        def __call__(self, x: list[float]) -> list[float]:
            return x

    model = modelotel.wrap(Module(), model=_name("wrap-call"))
    model([1.0, 2.0])
    (span,) = cap.spans()
    assert span.attributes[tn.ML_MODEL_METHOD] == "__call__"


def test_statistics_counted_once_when_both_methods_see_the_batch(cap: Captured) -> None:
    name = _name("wrap-stats")
    model = modelotel.wrap(Classifier(), model=name, feature_names=["a", "b", "c"])
    x = _batch(8)
    labels = model.predict(x)
    model.predict_proba(x)
    model.decision_function(x)
    counts = _points(cap, tn.METRIC_FEATURE_COUNT, name)
    # 8 rows, not 16 or 24: only predict (the primary method) feeds the statistics
    assert counts == {
        ((tn.ML_FEATURE, "a"),): 8,
        ((tn.ML_FEATURE, "b"),): 8,
        ((tn.ML_FEATURE, "c"),): 8,
    }
    # outputs: one column of class labels, not labels mixed with probabilities
    model.predict(x)
    model.predict_proba(x)
    window = cap.collect()
    out_count = {
        p.attributes[tn.ML_OUTPUT]: p.value
        for p in window
        if p.name == tn.METRIC_OUTPUT_COUNT and p.attributes[tn.ML_MODEL_NAME] == name
    }
    assert out_count == {"0": 16}
    # integer labels are categorical: no moments; probabilities would have added them
    assert not [
        p
        for p in window
        if p.name == tn.METRIC_OUTPUT_MEAN and p.attributes[tn.ML_MODEL_NAME] == name
    ]
    assert set(labels.tolist()) <= {0, 1}
    # serving metrics count every call of every method
    calls = cap.metric(tn.METRIC_PREDICTION_CALLS, **{tn.ML_MODEL_NAME: name})
    assert calls.value == 5


def test_explicit_methods_first_one_is_primary(cap: Captured) -> None:
    name = _name("wrap-explicit")
    model = modelotel.wrap(
        Classifier(),
        model=name,
        methods=["predict_proba", "predict"],
        feature_names=["a", "b", "c"],
    )
    x = _batch(4)
    model.predict(x)
    model.predict(x)
    model.predict_proba(x)
    counts = _points(cap, tn.METRIC_FEATURE_COUNT, name)
    assert counts[((tn.ML_FEATURE, "a"),)] == 4
    out_count = _points(cap, tn.METRIC_OUTPUT_COUNT, name)
    # the two probability columns of the one predict_proba call; predict's labels not added
    assert out_count == {((tn.ML_OUTPUT, "0"),): 4, ((tn.ML_OUTPUT, "1"),): 4}
    model.predict(x)
    model.predict_proba(x)
    out_count = _points(cap, tn.METRIC_OUTPUT_COUNT, name)
    assert out_count == {((tn.ML_OUTPUT, "0"),): 8, ((tn.ML_OUTPUT, "1"),): 8}


def test_payload_only_for_the_primary_method(cap: Captured) -> None:
    name = _name("wrap-payload")
    model = modelotel.wrap(Classifier(), model=name, payload_sample_rate=1.0)
    x = _batch(2)
    model.predict(x)
    model.predict_proba(x)
    model.decision_function(x)
    records = [r for r in cap.logs() if r.log_record.event_name == tn.EVENT_PREDICTION_PAYLOAD]
    assert len(records) == 1
    spans = {s.attributes[tn.ML_MODEL_METHOD]: s for s in cap.spans()}
    pid = spans["predict"].attributes[tn.ML_PREDICTION_ID]
    assert records[0].log_record.attributes[tn.ML_PREDICTION_ID] == pid
    assert spans["predict"].attributes[tn.ML_PAYLOAD_SAMPLED] is True
    assert tn.ML_PAYLOAD_SAMPLED not in spans["predict_proba"].attributes


def test_secondary_errors_still_count_in_serving_metrics(cap: Captured) -> None:
    class Broken(Classifier):
        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            raise RuntimeError("no probabilities")

    name = _name("wrap-err")
    model = modelotel.wrap(Broken(), model=name)
    with pytest.raises(RuntimeError, match="no probabilities"):
        model.predict_proba(_batch(2))
    (span,) = cap.spans()
    assert span.attributes[tn.ERROR_TYPE] == "RuntimeError"
    assert span.attributes[tn.ML_MODEL_METHOD] == "predict_proba"
    errors = cap.metric(tn.METRIC_PREDICTION_ERRORS, **{tn.ML_MODEL_NAME: name})
    assert errors.value == 1


def test_primary_flag_survives_pickling(cap: Captured) -> None:
    name = _name("wrap-pickle")
    model = modelotel.wrap(Classifier(), model=name, feature_names=["a", "b", "c"])
    again = pickle.loads(pickle.dumps(model))
    plans = {m: getattr(again._self_methods[m], PLAN_ATTR) for m in again._self_methods}
    assert plans["predict"].primary
    assert plans["predict"].method == "predict"
    assert not plans["predict_proba"].primary
    plan = pickle.loads(pickle.dumps(plans["decision_function"]))
    assert (plan.method, plan.primary) == ("decision_function", False)
    x = _batch(3)
    again.predict(x)
    again.predict_proba(x)
    assert _points(cap, tn.METRIC_FEATURE_COUNT, name)[((tn.ML_FEATURE, "a"),)] == 3


# ------------------------------------------------------------------ last_prediction_id
def test_last_prediction_id_joins_outcomes(cap: Captured) -> None:
    name = _name("wrap-outcome")
    model = modelotel.wrap(Classifier(), model=name, version="2", task="classification")
    x = np.array([[1.0, 0, 0], [-1.0, 0, 0], [2.0, 0, 0]])
    labels = model.predict(x)
    pid = modelotel.last_prediction_id()
    model.predict_proba(x)  # a secondary method: the id stays the one of predict
    assert modelotel.last_prediction_id() == pid
    spans = {s.attributes[tn.ML_MODEL_METHOD]: s for s in cap.spans()}
    assert pid == spans["predict"].attributes[tn.ML_PREDICTION_ID]
    assert pid != spans["predict_proba"].attributes[tn.ML_PREDICTION_ID]
    assert list(labels) == [1, 0, 1]
    modelotel.record_outcome(pid, [1, 1, 1], model=name, version="2")
    attrs = {tn.ML_MODEL_NAME: name, tn.ML_MODEL_VERSION: "2"}
    assert cap.metric(tn.METRIC_OUTCOME_COUNT, **attrs).value == 3
    assert cap.metric(tn.METRIC_OUTCOME_CORRECT, **attrs).value == 2
    assert cap.metric(tn.METRIC_OUTCOME_ACCURACY, **attrs).value == pytest.approx(2 / 3)


def test_last_prediction_id_is_per_call_and_per_context(cap: Captured) -> None:
    @modelotel.instrument(model=_name("lpid"))
    def predict(x: list[float]) -> list[float]:
        return x

    ids = []
    for _ in range(3):
        predict([1.0])
        ids.append(modelotel.last_prediction_id())
    span_ids = [s.attributes[tn.ML_PREDICTION_ID] for s in cap.spans()]
    assert ids == span_ids
    assert len(set(ids)) == 3

    seen: list[str | None] = []
    t = threading.Thread(target=lambda: seen.append(modelotel.last_prediction_id()))
    t.start()
    t.join()
    assert seen == [None]  # another thread: its own context
    assert modelotel.last_prediction_id() == ids[-1]


def test_last_prediction_id_async_and_generator(cap: Captured) -> None:
    @modelotel.instrument(model=_name("lpid-async"))
    async def apredict(x: list[float]) -> list[float]:
        return x

    @modelotel.instrument(model=_name("lpid-gen"))
    def stream(x: list[float]) -> Iterator[float]:
        yield from x

    async def main() -> tuple[str | None, str | None]:
        await apredict([1.0])  # awaited directly: same task, same context
        awaited = modelotel.last_prediction_id()
        await asyncio.create_task(apredict([2.0]))  # another task: a copy of the context
        return awaited, modelotel.last_prediction_id()

    awaited, after_task = asyncio.run(main())
    first, _ = (s.attributes[tn.ML_PREDICTION_ID] for s in cap.spans())
    assert awaited == first
    assert after_task == first  # the other task's call did not change this task's id
    assert list(stream([1.0, 2.0])) == [1.0, 2.0]
    assert modelotel.last_prediction_id() == cap.spans()[-1].attributes[tn.ML_PREDICTION_ID]


def test_last_prediction_id_observe_and_disabled(cap: Captured) -> None:
    name = _name("lpid-observe")
    with modelotel.observe(name) as call:
        call.record_outputs([1])
    assert modelotel.last_prediction_id() == call.prediction_id

    @modelotel.instrument(model=_name("lpid-sup"))
    def predict(x: list[float]) -> list[float]:
        return x

    with modelotel.suppress():
        predict([1.0])  # suppressed: no span, the id is unchanged
    assert modelotel.last_prediction_id() == call.prediction_id


def test_failed_id_generation_clears_the_last_id(
    cap: Captured, expect_internal_errors: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelotel import _prediction

    @modelotel.instrument(model=_name("lpid-fail"))
    def predict(x: list[float]) -> list[float]:
        return x

    predict([1.0])
    assert modelotel.last_prediction_id() is not None

    def boom() -> str:
        raise RuntimeError("no randomness")

    monkeypatch.setattr(_prediction, "_new_prediction_id", boom)
    assert predict([2.0]) == [2.0]
    assert modelotel.last_prediction_id() is None  # never the id of an earlier call
    assert expect_internal_errors


def test_monitor_shared_by_methods() -> None:
    name = _name("wrap-shared")
    model = modelotel.wrap(Classifier(), model=name)
    model.predict(_batch(1))
    model.predict_proba(_batch(1))
    plans = [getattr(f, PLAN_ATTR) for f in model._self_methods.values()]
    assert {id(p.monitor) for p in plans if p.monitor is not None} == {
        id(runtime.models[(name, "")])
    }
