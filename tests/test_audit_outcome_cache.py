"""Audit: the outcome cache keeps copies of scalars, never the caller's objects.

Models declared with ``task=`` keep each prediction (for ``record_outcome``) in a cache of
up to 10,000 entries. Its documented contract is "a list / tuple of at most 64 scalars as a
tuple copy"; before the fix any list of up to 64 *anything* was kept as ``tuple(value)``:

- a list of arrays (masks, embeddings; tensors on a GPU) stayed alive in the cache, up to
  10,000 calls' worth;
- a list of rows aliased the caller's inner lists: a caller that reused or edited them after
  the call changed the "prediction" that outcomes were later scored against.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import numpy as np

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.testing import capture


def test_list_of_arrays_is_not_kept_alive() -> None:
    refs: list[weakref.ref[Any]] = []

    @modelotel.instrument(model="audit-oc-arrays", task="classification")
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
        modelotel.record_outcome(pid, [0, 1], model="audit-oc-arrays")
        unmatched = cap.metric(A.METRIC_OUTCOME_UNMATCHED, **{A.ML_MODEL_NAME: "audit-oc-arrays"})
    assert unmatched.value == 1


def test_rows_edited_after_the_call_are_not_scored() -> None:
    @modelotel.instrument(model="audit-oc-rows", task="classification")
    def predict(x: Any) -> list[list[int]]:
        return [[1], [0]]

    with capture() as cap:
        out = predict([[1.0], [2.0]])
        pid = modelotel.last_prediction_id()
        out[0][0] = 0  # the caller edits its own result afterwards
        assert pid is not None
        modelotel.record_outcome(pid, [[0], [0]], model="audit-oc-rows")
        (record,) = [r for r in cap.logs()
                     if r.log_record.attributes.get(A.ML_PREDICTION_ID) == pid]
        names = {p.name for p in cap.collect()}
    assert record.log_record.attributes[A.ML_OUTCOME_MATCHED] is False
    assert A.ML_OUTCOME_PREDICTED not in record.log_record.attributes
    assert A.METRIC_OUTCOME_CORRECT not in names


def test_list_of_numpy_scalars_is_kept_as_plain_values() -> None:
    @modelotel.instrument(model="audit-oc-np", task="classification")
    def predict(x: Any) -> list[Any]:
        return list(np.array([1, 0, 1]))  # numpy int64 scalars

    with capture() as cap:
        out = predict([[1.0], [2.0], [3.0]])
        pid = modelotel.last_prediction_id()
        out[0] = 0
        assert pid is not None
        modelotel.record_outcome(pid, [1, 0, 0], model="audit-oc-np")
        count = cap.metric(A.METRIC_OUTCOME_COUNT, **{A.ML_MODEL_NAME: "audit-oc-np"})
        correct = cap.metric(A.METRIC_OUTCOME_CORRECT, **{A.ML_MODEL_NAME: "audit-oc-np"})
    assert (count.value, correct.value) == (3, 2)  # scored against [1, 0, 1], not the edit
