"""Outcomes leave the process only through the model's redaction rules, and can stay metrics-only.

Labels and predicted values end up in the ``ml.prediction.outcome`` record and, for
classification, as values of the ``ml.outcome.class`` metric attribute. Both pass the
model's payload rules (the built-in patterns for a model without payload capture);
``MODELOTEL_OUTCOME_RECORD_VALUES=false`` keeps them out of the records;
``MODELOTEL_OUTCOME_MAX_CLASSES`` caps the label values on the metric (``_OTHER`` beyond).
"""

from __future__ import annotations

import gc
import logging
import re
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel import outcomes
from modelotel._runtime import runtime
from modelotel.testing import Captured, capture

EMAIL = "jane.doe@example.com"


@pytest.fixture
def env() -> dict[str, str]:
    """Outcome settings for the test (read at the first outcome after the reset)."""
    return {}


@pytest.fixture
def cap(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    with capture() as c:
        yield c
    monkeypatch.undo()
    runtime.reset()


def _records(cap: Captured) -> list[dict[str, Any]]:
    return [
        dict(r.log_record.attributes or {})
        for r in cap.logs()
        if r.log_record.event_name == A.EVENT_PREDICTION_OUTCOME
    ]


def _classes(cap: Captured, model: str) -> dict[tuple[str, str], float]:
    return {
        (p.attributes[A.ML_OUTCOME_CLASS], p.attributes[A.ML_OUTCOME_RESULT]): p.value
        for p in cap.collect()
        if p.name == A.METRIC_OUTCOME_CLASS and p.attributes[A.ML_MODEL_NAME] == model
    }


def _classifier(model: str, **kw: Any) -> Any:
    @modelotel.instrument(model=model, version="1", task="classification", **kw)
    def predict(x: Any) -> Any:
        return x

    return predict


def test_labels_and_predictions_pass_the_patterns_without_payload_capture(cap: Captured) -> None:
    predict = _classifier("out-patterns")
    predict(EMAIL)  # the model predicts an address (its output is cached for the outcome)
    modelotel.record_outcome(modelotel.last_prediction_id() or "", EMAIL,
                             model="out-patterns", version="1")
    (record,) = _records(cap)
    assert record[A.ML_OUTCOME_ACTUAL] == "[REDACTED:email]"
    assert record[A.ML_OUTCOME_PREDICTED] == "[REDACTED:email]"
    assert record[A.ML_OUTCOME_REDACTED] is True
    assert _classes(cap, "out-patterns") == {("[REDACTED:email]", "correct"): 1}
    assert EMAIL not in repr(cap.logs()) + repr(cap.collect())


def test_a_card_number_label_is_redacted_as_an_integer_too(cap: Captured) -> None:
    predict = _classifier("out-card")
    predict(4111111111111111)
    modelotel.record_outcome(modelotel.last_prediction_id() or "", 4111111111111111,
                             model="out-card", version="1")
    (record,) = _records(cap)
    assert record[A.ML_OUTCOME_ACTUAL] == "[REDACTED:card]"
    assert _classes(cap, "out-card") == {("[REDACTED:card]", "correct"): 1}


def test_plain_labels_are_unchanged(cap: Captured) -> None:
    predict = _classifier("out-plain")
    predict([1, 0])
    modelotel.record_outcome(modelotel.last_prediction_id() or "", [1, 1],
                             model="out-plain", version="1")
    (record,) = _records(cap)
    assert record[A.ML_OUTCOME_ACTUAL] == "[1, 1]"
    assert record[A.ML_OUTCOME_PREDICTED] == "[1, 0]"
    assert A.ML_OUTCOME_REDACTED not in record
    assert _classes(cap, "out-plain") == {("1", "correct"): 1, ("1", "incorrect"): 1}


def test_the_models_own_patterns_apply(cap: Captured) -> None:
    cfg = modelotel.PayloadConfig(sample_rate=0.0, patterns=(re.compile(r"cust-\d+"),))
    predict = _classifier("out-custom", payload=cfg)
    predict("cust-991")
    modelotel.record_outcome(modelotel.last_prediction_id() or "", "cust-992",
                             model="out-custom", version="1")
    (record,) = _records(cap)
    assert record[A.ML_OUTCOME_ACTUAL] == "[REDACTED:custom]"
    assert record[A.ML_OUTCOME_PREDICTED] == "[REDACTED:custom]"
    assert _classes(cap, "out-custom") == {("[REDACTED:custom]", "incorrect"): 1}


def test_a_failing_redact_hook_withholds_the_values(cap: Captured) -> None:
    def hook(payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("the user's hook fails")

    predict = _classifier("out-hook", payload=modelotel.PayloadConfig(sample_rate=0.0,
                                                                        redact=hook))
    predict("secret-label")
    modelotel.record_outcome(modelotel.last_prediction_id() or "", "secret-label",
                             model="out-hook", version="1")
    (record,) = _records(cap)
    assert A.ML_OUTCOME_ACTUAL not in record
    assert A.ML_OUTCOME_PREDICTED not in record
    assert record[A.ML_OUTCOME_REDACTED] is True
    # accuracy is computed in the process; the label itself stays there
    assert _classes(cap, "out-hook") == {("_REDACTED", "correct"): 1}
    assert "secret-label" not in repr(cap.logs()) + repr(cap.collect())


def test_the_hook_sees_the_outcome_as_outputs(cap: Captured) -> None:
    seen: list[dict[str, Any]] = []

    def hook(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(payload)
        return {"inputs": None, "outputs": "masked"}

    predict = _classifier("out-hook-ok", payload=modelotel.PayloadConfig(sample_rate=0.0,
                                                                           redact=hook))
    predict("a")
    modelotel.record_outcome(modelotel.last_prediction_id() or "", "b",
                             model="out-hook-ok", version="1")
    (record,) = _records(cap)
    assert record[A.ML_OUTCOME_ACTUAL] == "masked"
    assert {"inputs": None, "outputs": "b"} in seen


@pytest.mark.parametrize("env", [{"MODELOTEL_OUTCOME_RECORD_VALUES": "false"}])
def test_record_values_off_keeps_outcomes_to_metrics(cap: Captured) -> None:
    predict = _classifier("out-metrics-only")
    predict("yes")
    pid = modelotel.last_prediction_id() or ""
    modelotel.record_outcome(pid, "no", model="out-metrics-only", version="1")
    (record,) = _records(cap)
    assert record == {
        A.ML_MODEL_NAME: "out-metrics-only",
        A.ML_MODEL_VERSION: "1",
        A.ML_PREDICTION_ID: pid,
        A.ML_OUTCOME_MATCHED: True,
    }
    assert _classes(cap, "out-metrics-only") == {("no", "incorrect"): 1}


@pytest.mark.parametrize("env", [{"MODELOTEL_OUTCOME_MAX_CLASSES": "2"}])
def test_label_values_on_the_metric_are_capped(cap: Captured) -> None:
    predict = _classifier("out-cap")
    for label in ("a", "b", "c", "d", "a"):
        predict(label)
        modelotel.record_outcome(modelotel.last_prediction_id() or "", label,
                                 model="out-cap", version="1")
    assert _classes(cap, "out-cap") == {
        ("a", "correct"): 2,
        ("b", "correct"): 1,
        (outcomes.OTHER_CLASS, "correct"): 2,
    }


@pytest.mark.parametrize("env", [{"MODELOTEL_OUTCOME_MAX_CLASSES": "0"}])
def test_a_cap_of_zero_puts_no_label_on_the_metric(cap: Captured) -> None:
    predict = _classifier("out-cap0")
    predict("x")
    modelotel.record_outcome(modelotel.last_prediction_id() or "", "x",
                             model="out-cap0", version="1")
    assert _classes(cap, "out-cap0") == {("_OTHER", "correct"): 1}


@pytest.mark.parametrize(
    "env",
    [{"MODELOTEL_OUTCOME_RECORD_VALUES": "maybe"}, {"MODELOTEL_OUTCOME_MAX_CLASSES": "-3"}],
)
def test_a_bad_setting_warns_once_and_keeps_the_default(
    caplog: pytest.LogCaptureFixture, cap: Captured, env: dict[str, str]
) -> None:
    # caplog before cap: the settings are parsed (and warn) when the capture starts, in setup
    (var,) = env
    model = f"out-bad-env-{var.lower()}"  # a monitor per case: each keeps its own cache
    predict = _classifier(model)
    with caplog.at_level(logging.WARNING, logger="modelotel"):
        runtime.reload_settings()  # a second parse: still one warning
        for _ in range(3):
            predict("x")
            modelotel.record_outcome(modelotel.last_prediction_id() or "", "x",
                                     model=model, version="1")
    records = caplog.get_records("setup") + caplog.records
    warnings = [r for r in records if var in r.getMessage() and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert all(r[A.ML_OUTCOME_ACTUAL] == "x" for r in _records(cap))
    assert _classes(cap, model) == {("x", "correct"): 3}


def test_an_outcome_for_an_unknown_model_gets_the_builtin_patterns(cap: Captured) -> None:
    modelotel.record_outcome("0123456789abcdef", EMAIL, model="never-built", version="9",
                             predicted=EMAIL)
    (record,) = _records(cap)
    assert record[A.ML_OUTCOME_ACTUAL] == "[REDACTED:email]"
    assert _classes(cap, "never-built") == {("[REDACTED:email]", "correct"): 1}


# The outcome cache (up to 10,000 predictions, for record_outcome) keeps "a list / tuple of at
# most 64 scalars as a tuple copy": never the caller's arrays, never its inner lists.
def test_outcome_cache_keeps_no_array_alive() -> None:
    refs: list[weakref.ref[Any]] = []

    @modelotel.instrument(model="oc-arrays", task="classification")
    def predict(x: Any) -> list[np.ndarray]:
        out = [np.zeros(1000), np.ones(1000)]
        refs.extend(weakref.ref(a) for a in out)
        return out

    with capture() as cap:
        for _ in range(20):
            predict([[1.0]])
        pid = modelotel.last_prediction_id()
        gc.collect()
        assert [r for r in refs if r() is not None] == []
        assert pid is not None
        modelotel.record_outcome(pid, [0, 1], model="oc-arrays")
        unmatched = cap.metric(A.METRIC_OUTCOME_UNMATCHED, **{A.ML_MODEL_NAME: "oc-arrays"})
    assert unmatched.value == 1


def test_outcome_cache_does_not_alias_the_callers_rows() -> None:
    @modelotel.instrument(model="oc-rows", task="classification")
    def predict(x: Any) -> list[list[int]]:
        return [[1], [0]]

    with capture() as cap:
        out = predict([[1.0], [2.0]])
        pid = modelotel.last_prediction_id()
        out[0][0] = 0  # the caller edits its own result afterwards
        assert pid is not None
        modelotel.record_outcome(pid, [[0], [0]], model="oc-rows")
        (record,) = [r for r in cap.logs()
                     if r.log_record.attributes.get(A.ML_PREDICTION_ID) == pid]
        names = {p.name for p in cap.collect()}
    assert record.log_record.attributes[A.ML_OUTCOME_MATCHED] is False
    assert A.ML_OUTCOME_PREDICTED not in record.log_record.attributes
    assert A.METRIC_OUTCOME_CORRECT not in names


def test_outcome_cache_copies_numpy_scalars_as_plain_values() -> None:
    @modelotel.instrument(model="oc-np", task="classification")
    def predict(x: Any) -> list[Any]:
        return list(np.array([1, 0, 1]))  # numpy int64 scalars

    with capture() as cap:
        out = predict([[1.0], [2.0], [3.0]])
        pid = modelotel.last_prediction_id()
        out[0] = 0
        assert pid is not None
        modelotel.record_outcome(pid, [1, 0, 0], model="oc-np")
        count = cap.metric(A.METRIC_OUTCOME_COUNT, **{A.ML_MODEL_NAME: "oc-np"})
        correct = cap.metric(A.METRIC_OUTCOME_CORRECT, **{A.ML_MODEL_NAME: "oc-np"})
    assert (count.value, correct.value) == (3, 2)  # scored against [1, 0, 1], not the edit
