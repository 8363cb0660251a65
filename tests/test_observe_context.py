"""observe(): the context manager form, sync and async."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel import attributes as tn
from modelotel._types import MISSING
from modelotel.testing import capture


def test_observe_records_inputs_outputs_and_attributes() -> None:
    with capture() as cap:
        with modelotel.observe("obs-sync", version="2") as call:
            assert trace.get_current_span() is call.span
            call.record_inputs([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
            call.record_outputs([0, 1, 0])
            call.set_attribute("app.request_id", "r-1")
        assert call.inputs == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
        assert call.outputs == [0, 1, 0]
        (span,) = cap.spans()
        assert span.name == "predict obs-sync"
        assert span.attributes[tn.ML_MODEL_VERSION] == "2"
        assert span.attributes[tn.ML_INPUT_ROWS] == 3
        assert span.attributes[tn.ML_INPUT_FEATURES] == 2
        assert span.attributes["app.request_id"] == "r-1"
        assert span.attributes[tn.ML_PREDICTION_ID] == call.prediction_id
        assert cap.metric(tn.METRIC_PREDICTION_ROWS, **{tn.ML_MODEL_NAME: "obs-sync"}).value == 3
    assert not trace.get_current_span().is_recording()


def test_observe_exception_propagates_unchanged() -> None:
    err = KeyError("missing feature")
    with capture() as cap:
        with pytest.raises(KeyError) as info, modelotel.observe("obs-err"):
            raise err
        assert info.value is err
        (span,) = cap.spans()
        assert span.attributes[tn.ERROR_TYPE] == "KeyError"
        assert span.status.status_code == StatusCode.ERROR
        assert [e.name for e in span.events] == ["exception"]
        point = cap.metric(tn.METRIC_PREDICTION_ERRORS, **{tn.ML_MODEL_NAME: "obs-err"})
        assert point.value == 1
        assert point.attributes[tn.ERROR_TYPE] == "KeyError"


def test_observe_async_and_reuse() -> None:
    obs = modelotel.observe("obs-async")

    async def main() -> None:
        async with obs as outer:
            async with obs as inner:  # the same object, nested: two calls
                assert inner is not outer
                inner.record_inputs([1, 2])
            await asyncio.sleep(0)

    with capture() as cap:
        asyncio.run(main())
        spans = cap.spans()
        assert [s.name for s in spans] == ["predict obs-async", "predict obs-async"]
        assert spans[0].parent.span_id == spans[1].context.span_id
        assert spans[0].attributes[tn.ML_INPUT_ROWS] == 2
        assert tn.ML_INPUT_ROWS not in spans[1].attributes


def test_observe_without_inputs_has_missing() -> None:
    with capture() as cap, modelotel.observe("obs-missing") as call:
        assert call.inputs is MISSING
        assert call.outputs is MISSING
    (span,) = cap.spans()
    assert tn.ML_INPUT_ROWS not in span.attributes


def test_observe_requires_a_model_name() -> None:
    with pytest.raises(TypeError):
        modelotel.observe(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="task="):
        modelotel.observe("m", task="nope")


def test_one_observe_object_shared_by_threads() -> None:

    obs = modelotel.observe("obs-shared")
    barrier = threading.Barrier(4)
    seen: list[str] = []

    def worker(i: int) -> None:
        with obs as call:
            call.record_inputs([[0.0]] * (i + 1))
            barrier.wait(timeout=10)  # all four calls are open at once
        seen.append(call.prediction_id)

    with capture() as cap:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        spans = cap.spans()
        assert sorted(s.attributes[tn.ML_INPUT_ROWS] for s in spans) == [1, 2, 3, 4]
        assert {s.attributes[tn.ML_PREDICTION_ID] for s in spans} == set(seen)


def test_async_generator_started_inside_suppress_stays_silent() -> None:
    @modelotel.instrument(model="host-agen")
    async def stream(x: Any) -> AsyncIterator[int]:
        for i in range(3):
            yield i

    async def consume() -> list[int]:
        got: list[int] = []
        with modelotel.suppress():
            agen = stream([[1.0]])
            got.append(await agen.__anext__())
        got.extend([v async for v in agen])  # resumed outside the block
        async for v in stream([[1.0]]):  # a new stream outside: instrumented
            got.append(v)
        return got

    with capture() as cap:
        assert asyncio.run(consume()) == [0, 1, 2, 0, 1, 2]
        spans = cap.spans()
    assert len(spans) == 1
    assert spans[0].attributes is not None
    assert spans[0].attributes[A.ML_STREAM_ITEMS] == 3
