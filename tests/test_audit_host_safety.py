"""Audit: scenarios of the "never hurt the host" promise that held, kept as regression tests.

Each test names the way it could have failed: consuming a caller's iterator, computing a
lazy result, keeping a view of an input that the caller edits afterwards, losing a span on
KeyboardInterrupt, mis-parenting nested models, or hurting threads while providers swap.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import modelotel
from modelotel import _safety
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import reasons as R  # noqa: N812
from modelotel.testing import capture


class _Lazy:
    """A dask-like result: any attempt to materialise it is a failure of the test."""

    touched: list[str]

    def __init__(self) -> None:
        self.touched = []

    def _hit(self, what: str) -> Any:
        self.touched.append(what)
        raise AssertionError(f"modelotel called {what} on a lazy result")

    def compute(self) -> Any:
        return self._hit("compute")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        return self._hit("__array__")

    def __len__(self) -> int:
        return int(self._hit("__len__"))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._hit("__iter__"))

    def to_numpy(self) -> Any:
        return self._hit("to_numpy")


@pytest.mark.parametrize("payload", [False, True], ids=["payload_off", "payload_on"])
def test_generator_input_and_lazy_output_are_not_touched(payload: bool) -> None:
    pulled: list[int] = []

    def rows() -> Iterator[list[float]]:
        for i in range(3):
            pulled.append(i)
            yield [float(i)]

    lazy = _Lazy()
    rate = 1.0 if payload else None
    model = f"audit-host-lazy-{payload}"

    @modelotel.instrument(model=model, payload_sample_rate=rate)
    def predict(x: Any) -> _Lazy:
        return lazy

    gen = rows()
    with capture() as cap:
        assert predict(gen) is lazy
        n_logs = len(cap.logs())
    assert pulled == []
    assert list(gen) == [[0.0], [1.0], [2.0]]  # the caller still gets every row
    assert [t for t in lazy.touched if t != "__repr__"] == []
    assert n_logs == (1 if payload else 0)
    assert _safety.health.skipped[R.SKIP_UNSUPPORTED] == 2  # the input and the output


def test_input_edited_after_the_call_does_not_change_its_statistics() -> None:
    """Small batches are buffered and reduced later: the buffer must hold copies."""

    @modelotel.instrument(model="audit-host-edit")
    def predict(x: np.ndarray) -> np.ndarray:
        return x[:, 0]

    x = np.array([[1.0, 10.0], [3.0, 30.0]])
    with capture() as cap:
        predict(x)
        x[:] = 1000.0  # the caller reuses its buffer before the window is reduced
        points = cap.collect()  # one collection: the gauges are per window
    mean = [p.value for p in points
            if p.name == A.METRIC_FEATURE_MEAN and p.attributes.get(A.ML_FEATURE) == "1"]
    out_max = [p.value for p in points
               if p.name == A.METRIC_OUTPUT_MAX and p.attributes.get(A.ML_OUTPUT) == "0"]
    assert mean == [20.0]
    assert out_max == [3.0]


def test_nested_models_get_nested_spans_and_their_own_statistics() -> None:
    @modelotel.instrument(model="audit-host-inner")
    def inner(x: np.ndarray) -> np.ndarray:
        return x[:, 0] * 2

    @modelotel.instrument(model="audit-host-outer")
    def outer(x: np.ndarray) -> np.ndarray:
        return inner(x[:, :1]) + 1

    with capture() as cap:
        outer(np.ones((3, 2)))
        spans = {s.name: s for s in cap.spans()}
        inner_n = cap.metric(A.METRIC_FEATURE_COUNT,
                             **{A.ML_MODEL_NAME: "audit-host-inner", A.ML_FEATURE: "0"})
        outer_n = cap.metric(A.METRIC_FEATURE_COUNT,
                             **{A.ML_MODEL_NAME: "audit-host-outer", A.ML_FEATURE: "1"})
    inner_span = spans["predict audit-host-inner"]
    outer_span = spans["predict audit-host-outer"]
    assert inner_span.parent is not None
    assert inner_span.parent.span_id == outer_span.context.span_id
    assert (inner_n.value, outer_n.value) == (3, 3)


def test_keyboard_interrupt_in_observe_ends_the_span_and_passes_through() -> None:
    interrupt = KeyboardInterrupt()

    def block() -> None:
        with modelotel.observe("audit-host-ki") as call:
            call.record_inputs(np.ones((2, 2)))
            raise interrupt

    with capture() as cap:
        with pytest.raises(KeyboardInterrupt) as info:
            block()
        assert info.value is interrupt
        assert trace.get_current_span() is trace.INVALID_SPAN  # the context was restored
        (span,) = cap.spans()
        calls = cap.metric(A.METRIC_PREDICTION_CALLS, **{A.ML_MODEL_NAME: "audit-host-ki"})
    assert span.end_time is not None
    assert span.attributes is not None
    assert span.attributes[A.ERROR_TYPE] == "KeyboardInterrupt"
    assert span.status.status_code is StatusCode.UNSET  # interrupted, not a failed prediction
    assert calls.value == 1
    assert not [p for p in cap.collect() if p.name == A.METRIC_PREDICTION_ERRORS]


def test_async_generator_started_inside_suppress_stays_silent() -> None:
    @modelotel.instrument(model="audit-host-agen")
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


def test_threads_keep_calling_while_capture_swaps_providers() -> None:
    @modelotel.instrument(model="audit-host-swap")
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
