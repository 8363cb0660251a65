"""last_prediction_id(): the id of the call that returned to the caller, also when it nests.

The id is set when a call starts (the predict function sees its own id) and again when it
returns or raises, in the caller's context, so an instrumented model called by another one
does not leave its id to the outer call's caller.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

import modelotel
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel.testing import Captured, capture


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


def _ids(cap: Captured) -> dict[str, str]:
    """Prediction id of each span, by model name (one span per model in these tests)."""
    out: dict[str, str] = {}
    for s in cap.spans():
        assert s.attributes is not None
        name = str(s.attributes[A.ML_MODEL_NAME])
        assert name not in out, name
        out[name] = str(s.attributes[A.ML_PREDICTION_ID])
    return out


def test_nested_sync_call_returns_the_outer_id(cap: Captured) -> None:
    seen: dict[str, str | None] = {}

    @modelotel.instrument(model="lpid-inner", task="classification")
    def inner(x: Any) -> list[int]:
        return [1 for _ in x]

    @modelotel.instrument(model="lpid-outer", task="classification")
    def outer(x: Any) -> list[int]:
        seen["own"] = modelotel.last_prediction_id()  # set at the start: its own id
        y = inner(x)
        seen["after_inner"] = modelotel.last_prediction_id()
        return [1 - v for v in y]

    assert outer([[1.0], [2.0]]) == [0, 0]
    pid = modelotel.last_prediction_id()
    ids = _ids(cap)
    assert pid == ids["lpid-outer"]
    assert seen == {"own": ids["lpid-outer"], "after_inner": ids["lpid-inner"]}
    # the outcome joins the outer call's cached outputs (it was unmatched before)
    modelotel.record_outcome(pid, [0, 1], model="lpid-outer")
    attrs = {A.ML_MODEL_NAME: "lpid-outer"}
    assert cap.metric(A.METRIC_OUTCOME_COUNT, **attrs).value == 2
    assert cap.metric(A.METRIC_OUTCOME_CORRECT, **attrs).value == 1
    with pytest.raises(LookupError):
        cap.metric(A.METRIC_OUTCOME_UNMATCHED, **attrs)


def test_nested_call_that_raises_returns_the_outer_id(cap: Captured) -> None:
    @modelotel.instrument(model="lpid-raise-inner")
    def inner(x: Any) -> Any:
        return x

    @modelotel.instrument(model="lpid-raise-outer")
    def outer(x: Any) -> Any:
        inner(x)
        raise ValueError("after the inner call")

    with pytest.raises(ValueError):
        outer([1.0])
    assert modelotel.last_prediction_id() == _ids(cap)["lpid-raise-outer"]


def test_nested_async_awaited_returns_the_outer_id(cap: Captured) -> None:
    @modelotel.instrument(model="lpid-ainner")
    async def inner(x: Any) -> Any:
        await asyncio.sleep(0)
        return x

    @modelotel.instrument(model="lpid-aouter")
    async def outer(x: Any) -> Any:
        return await inner(x)

    @modelotel.instrument(model="lpid-atask")
    async def elsewhere(x: Any) -> Any:
        return x

    async def main() -> tuple[str | None, str | None]:
        await outer([1.0])
        awaited = modelotel.last_prediction_id()
        await asyncio.create_task(elsewhere([1.0]))  # another task: its own context
        return awaited, modelotel.last_prediction_id()

    awaited, after_task = asyncio.run(main())
    ids = _ids(cap)
    assert awaited == ids["lpid-aouter"]
    assert after_task == ids["lpid-aouter"]


def test_nested_in_a_thread_stays_in_that_thread(cap: Captured) -> None:
    @modelotel.instrument(model="lpid-tinner")
    def inner(x: Any) -> Any:
        return x

    @modelotel.instrument(model="lpid-touter")
    def outer(x: Any) -> Any:
        return inner(x)

    @modelotel.instrument(model="lpid-tmain")
    def main_model(x: Any) -> Any:
        return x

    main_model([1.0])
    seen: list[str | None] = []

    def work() -> None:
        outer([1.0])
        seen.append(modelotel.last_prediction_id())

    t = threading.Thread(target=work)
    t.start()
    t.join()
    ids = _ids(cap)
    assert seen == [ids["lpid-touter"]]
    assert modelotel.last_prediction_id() == ids["lpid-tmain"]  # unchanged by the thread


class _Classifier:
    def __init__(self, helper: Any) -> None:
        self.helper = helper

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.helper(x))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 2), 0.5)


def test_wrap_primary_nested_and_secondary_unchanged(cap: Captured) -> None:
    @modelotel.instrument(model="lpid-helper")
    def helper(x: Any) -> list[int]:
        return [1] * len(x)

    clf = modelotel.wrap(_Classifier(helper), model="lpid-wrap", task="classification")
    x = np.ones((3, 2))
    assert list(clf.predict(x)) == [1, 1, 1]
    pid = modelotel.last_prediction_id()
    clf.predict_proba(x)  # a secondary method: changes nothing, at its start or its end
    assert modelotel.last_prediction_id() == pid
    spans = {
        (s.attributes or {}).get(A.ML_MODEL_METHOD, "helper"): (s.attributes or {})[
            A.ML_PREDICTION_ID
        ]
        for s in cap.spans()
    }
    assert pid == spans["predict"]
    assert pid not in (spans["helper"], spans["predict_proba"])


def test_observe_block_returns_its_own_id(cap: Captured) -> None:
    @modelotel.instrument(model="lpid-obs-inner")
    def inner(x: Any) -> Any:
        return x

    with modelotel.observe("lpid-obs") as call:
        assert modelotel.last_prediction_id() == call.prediction_id
        call.record_outputs(inner([1.0]))
        assert modelotel.last_prediction_id() != call.prediction_id
    assert modelotel.last_prediction_id() == call.prediction_id

    async def main() -> tuple[str | None, str]:
        async with modelotel.observe("lpid-obs-async") as acall:
            inner([2.0])
        return modelotel.last_prediction_id(), acall.prediction_id

    got, expected = asyncio.run(main())
    assert got == expected


def test_streams_reset_the_id_when_exhausted_not_when_closed_early(cap: Captured) -> None:
    @modelotel.instrument(model="lpid-sinner")
    def inner(x: Any) -> Any:
        return x

    @modelotel.instrument(model="lpid-stream")
    def stream(x: list[float]) -> Iterator[float]:
        for v in x:
            yield inner(v)

    @modelotel.instrument(model="lpid-astream")
    async def astream(x: list[float]) -> AsyncIterator[float]:
        for v in x:
            yield inner(v)

    assert list(stream([1.0, 2.0])) == [1.0, 2.0]
    stream_id = cap.spans()[-1].attributes[A.ML_PREDICTION_ID]  # type: ignore[index]
    assert modelotel.last_prediction_id() == stream_id

    async def main() -> str | None:
        assert [v async for v in astream([1.0, 2.0])] == [1.0, 2.0]
        return modelotel.last_prediction_id()

    assert asyncio.run(main()) == cap.spans()[-1].attributes[A.ML_PREDICTION_ID]  # type: ignore[index]

    cap.clear()
    for _ in stream([1.0, 2.0]):
        break  # closed early: the id stays the one set last (the inner call's)
    inner_id = cap.spans()[0].attributes[A.ML_PREDICTION_ID]  # type: ignore[index]
    assert cap.spans()[-1].attributes[A.ML_STREAM_CLOSED_EARLY] is True  # type: ignore[index]
    assert modelotel.last_prediction_id() == inner_id
