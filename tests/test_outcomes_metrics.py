"""Outcomes: the cache, record_outcome, and outcome metrics against hand-computed values."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import modelotel
from _payload_support import Sink
from modelotel import _monitor, outcomes
from modelotel import attributes as tn
from modelotel._options import model_config
from modelotel._runtime import runtime
from modelotel._safety import health


@pytest.fixture
def sink() -> Iterator[Sink]:
    runtime.reset()
    with Sink() as s:
        yield s
    runtime.reset()


def _attrs(model: str, version: str) -> dict[str, str]:
    return {tn.ML_MODEL_NAME: model, tn.ML_MODEL_VERSION: version}


def test_cacheable_rule() -> None:
    keep = outcomes._cacheable
    assert keep(1) == 1
    assert keep(0.5) == 0.5
    assert keep(True) is True
    assert keep("cat") == "cat"
    assert keep("x" * 257) is outcomes._NOT_KEPT
    assert keep(np.int64(3)) == 3
    assert type(keep(np.float32(0.5))) is float
    assert keep([1, 2]) == (1, 2)
    assert keep(list(range(65))) is outcomes._NOT_KEPT
    assert keep(np.array([1.0, 2.0])) == (1.0, 2.0)
    assert keep(np.zeros((2, 2))) is outcomes._NOT_KEPT
    assert keep(np.array(["a"], dtype=object)) is outcomes._NOT_KEPT
    assert keep({"label": 1}) is outcomes._NOT_KEPT
    assert keep(None) is outcomes._NOT_KEPT


def test_cache_is_bounded_and_keeps_the_most_recent() -> None:
    size = 10
    cache = outcomes.PredictionCache("m", "1", "classification", size=size)
    for i in range(1000):
        cache.put(f"id{i}", i)
        assert len(cache) <= size
        kept = [j for j in range(i + 1) if f"id{j}" in cache._cur or f"id{j}" in cache._prev]
        assert kept[-1] == i
        assert len(kept) >= min(i + 1, size // 2)
        assert kept == list(range(i + 1 - len(kept), i + 1))  # the most recent ones
    assert cache.pop("id0") is outcomes._NOT_KEPT
    assert cache.pop("id999") == 999
    assert cache.pop("id999") is outcomes._NOT_KEPT  # matched once
    assert cache.pop("id995") == 995  # from the previous generation


def test_cache_only_for_declared_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    def cache_of(model: str, task: str) -> outcomes.PredictionCache | None:
        return _monitor.get_monitor(model_config(model=model, version="1", task=task)).outcome_cache

    assert cache_of("cache-none", "") is None
    assert cache_of("cache-other", "other") is None
    assert isinstance(cache_of("cache-regression", "regression"), outcomes.PredictionCache)
    monkeypatch.setenv("MODELOTEL_OUTCOME_CACHE_SIZE", "0")
    runtime.reload_settings()
    assert cache_of("cache-off", "classification") is None
    monkeypatch.setenv("MODELOTEL_OUTCOME_CACHE_SIZE", "7")
    runtime.reload_settings()
    cache = cache_of("cache-7", "classification")
    assert cache is not None
    assert cache.size == 7


def test_classification_accuracy_and_class_counts_match_hand_computation(sink: Sink) -> None:
    @modelotel.instrument(model="clf", version="2", task="classification")
    def predict(x: Any) -> str:
        return "spam" if x["score"] > 0.5 else "ham"

    rng = random.Random(1)
    ids: list[tuple[str, str, str]] = []
    for _ in range(500):
        score = rng.random()
        out = predict({"score": score})
        ids.append(("", out, "spam" if rng.random() < 0.6 else "ham"))
    spans = [s for s in sink.span_exporter.get_finished_spans() if s.name == "predict clf"]
    assert len(spans) == 500
    pids = [str(s.attributes[tn.ML_PREDICTION_ID]) for s in spans]
    for pid, (_, _predicted, actual) in zip(pids, ids, strict=True):
        modelotel.record_outcome(pid, actual, model="clf", version="2")
    correct = sum(p == a for _, p, a in ids)
    attrs = _attrs("clf", "2")
    assert sink.value(tn.METRIC_OUTCOME_COUNT, **attrs) == 500
    assert sink.value(tn.METRIC_OUTCOME_CORRECT, **attrs) == correct
    assert sink.value(tn.METRIC_OUTCOME_ACCURACY, **attrs) == pytest.approx(correct / 500)
    for label in ("spam", "ham"):
        for result, ok in (("correct", True), ("incorrect", False)):
            want = sum(a == label and (p == a) == ok for _, p, a in ids)
            got = sink.value(
                tn.METRIC_OUTCOME_CLASS,
                **attrs,
                **{tn.ML_OUTCOME_CLASS: label, tn.ML_OUTCOME_RESULT: result},
            )
            assert got == want
    assert sink.points(tn.METRIC_OUTCOME_UNMATCHED) == []
    recs = sink.logs(tn.EVENT_PREDICTION_OUTCOME)
    assert len(recs) == 500
    first = dict(recs[0].attributes)
    assert first == {
        tn.ML_MODEL_NAME: "clf",
        tn.ML_MODEL_VERSION: "2",
        tn.ML_PREDICTION_ID: pids[0],
        tn.ML_OUTCOME_ACTUAL: ids[0][2],
        tn.ML_OUTCOME_PREDICTED: ids[0][1],
        tn.ML_OUTCOME_MATCHED: True,
    }
    assert sink.logs(tn.EVENT_PREDICTION_PAYLOAD) == []  # payloads stay off


def test_regression_absolute_error_matches_mae(sink: Sink) -> None:
    @modelotel.instrument(model="reg", version="1", task="regression")
    def predict(x: float) -> float:
        return 2.0 * x

    rng = random.Random(2)
    xs = [rng.uniform(-5, 5) for _ in range(300)]
    actuals = [2.0 * x + rng.gauss(0, 1) for x in xs]
    for x in xs:
        predict(x)
    pids = [str(s.attributes[tn.ML_PREDICTION_ID]) for s in sink.span_exporter.get_finished_spans()]
    for pid, a in zip(pids, actuals, strict=True):
        modelotel.record_outcome(pid, a)  # model and version found through the cache
    mae = sum(abs(2.0 * x - a) for x, a in zip(xs, actuals, strict=True)) / len(xs)
    total, count = sink.value(tn.METRIC_OUTCOME_ABSOLUTE_ERROR, **_attrs("reg", "1"))
    assert count == 300
    assert total / count == pytest.approx(mae, rel=1e-12)
    assert sink.value(tn.METRIC_OUTCOME_COUNT, **_attrs("reg", "1")) == 300
    assert sink.points(tn.METRIC_OUTCOME_ACCURACY) == []


def test_batch_predictions_compare_elementwise(sink: Sink) -> None:
    @modelotel.instrument(model="batch", version="1", task="classification")
    def predict(rows: Any) -> Any:
        return np.array([1, 0, 1])

    predict([[1], [2], [3]])
    (span,) = sink.span_exporter.get_finished_spans()
    modelotel.record_outcome(str(span.attributes[tn.ML_PREDICTION_ID]), [1, 1, 1], model="batch")
    attrs = _attrs("batch", "1")
    assert sink.value(tn.METRIC_OUTCOME_COUNT, **attrs) == 3
    assert sink.value(tn.METRIC_OUTCOME_CORRECT, **attrs) == 2


def test_unmatched_outcomes_are_counted_and_still_emitted(sink: Sink) -> None:
    @modelotel.instrument(model="u", version="1", task="classification")
    def predict(x: Any) -> int:
        return 1

    predict([0])
    (span,) = sink.span_exporter.get_finished_spans()
    pid = str(span.attributes[tn.ML_PREDICTION_ID])
    modelotel.record_outcome(pid, 1, model="u", version="1")
    modelotel.record_outcome(pid, 1, model="u", version="1")  # second outcome: unmatched
    modelotel.record_outcome("ffffffffffffffff", 0, model="u", version="1")  # never seen
    modelotel.record_outcome(pid, [1, 2], model="u", version="1")  # also gone
    attrs = _attrs("u", "1")
    assert sink.value(tn.METRIC_OUTCOME_UNMATCHED, **attrs) == 3
    assert sink.value(tn.METRIC_OUTCOME_COUNT, **attrs) == 1
    recs = sink.logs(tn.EVENT_PREDICTION_OUTCOME)
    assert [r.attributes[tn.ML_OUTCOME_MATCHED] for r in recs] == [True, False, False, False]
    assert recs[3].attributes[tn.ML_OUTCOME_ACTUAL] == "[1, 2]"
    assert tn.ML_OUTCOME_PREDICTED not in recs[1].attributes


def test_predicted_given_explicitly_updates_metrics_without_the_cache(sink: Sink) -> None:
    modelotel.record_outcome(
        "aaaaaaaaaaaaaaaa", "cat", model="remote", version="9", predicted="cat"
    )
    modelotel.record_outcome(
        "bbbbbbbbbbbbbbbb", "dog", model="remote", version="9", predicted="cat"
    )
    modelotel.record_outcome(
        "cccccccccccccccc", 1.5, model="remote-reg", version="1", predicted=2.0
    )
    attrs = _attrs("remote", "9")
    assert sink.value(tn.METRIC_OUTCOME_COUNT, **attrs) == 2
    assert sink.value(tn.METRIC_OUTCOME_ACCURACY, **attrs) == 0.5
    assert sink.value(tn.METRIC_OUTCOME_ABSOLUTE_ERROR, **_attrs("remote-reg", "1")) == (0.5, 1)


def test_bad_input_never_raises(sink: Sink) -> None:
    modelotel.record_outcome(None, 1)  # type: ignore[arg-type]
    modelotel.record_outcome("", 1)
    modelotel.record_outcome("dddddddddddddddd", object(), model="x", predicted=[1, 2])
    modelotel.record_outcome("eeeeeeeeeeeeeeee", "n/a", model="x-reg", predicted=float("nan"))
    # None and "" ids; a batch prediction against a scalar; a label that is not a number
    assert health.skipped[tn.REASON_OUTCOME_BAD_INPUT] == 4
    assert health.errors == {}
    assert len(sink.logs(tn.EVENT_PREDICTION_OUTCOME)) == 2
    assert sink.points(tn.METRIC_OUTCOME_ABSOLUTE_ERROR) == []


def test_no_cache_without_a_declared_task(sink: Sink) -> None:
    @modelotel.instrument(model="plain", version="1")
    def predict(x: Any) -> int:
        return 1

    predict([1])
    (span,) = sink.span_exporter.get_finished_spans()
    modelotel.record_outcome(str(span.attributes[tn.ML_PREDICTION_ID]), 1, model="plain")
    # no task: nothing cached; the version is unknown to record_outcome
    assert sink.value(tn.METRIC_OUTCOME_UNMATCHED, **_attrs("plain", "")) == 1
    assert sink.logs(tn.EVENT_PREDICTION_PAYLOAD) == []


def test_cache_and_payloads_together(sink: Sink) -> None:
    @modelotel.instrument(model="both", version="1", task="regression", payload_sample_rate=1.0)
    def predict(x: float) -> float:
        return x + 1.0

    predict(1.0)
    (span,) = sink.span_exporter.get_finished_spans()
    (rec,) = sink.logs(tn.EVENT_PREDICTION_PAYLOAD)
    pid = str(span.attributes[tn.ML_PREDICTION_ID])
    assert rec.attributes[tn.ML_PREDICTION_ID] == pid
    modelotel.record_outcome(pid, 2.5, model="both", version="1")
    assert sink.value(tn.METRIC_OUTCOME_ABSOLUTE_ERROR, **_attrs("both", "1")) == (0.5, 1)
