"""Calls ended by a BaseException that is not an Exception: interrupted, not failed.

``asyncio.CancelledError`` (a client that disconnected cancels its request task),
``KeyboardInterrupt`` and ``SystemExit`` propagate unchanged; the span ends with
``error.type`` but status UNSET and no ``exception`` event; the call counts in
``ml.prediction.calls`` and the duration histogram (without ``error.type``) and not in
``ml.prediction.errors``; the payload sampler does not keep it as an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any, cast

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import modelotel
from _payload_support import fake_call, run
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._payload import PayloadConfig, PayloadPart
from modelotel.testing import Captured, capture


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


def _model(name: str) -> dict[str, str]:
    return {A.ML_MODEL_NAME: name}


def _assert_interrupted(cap: Captured, span: ReadableSpan, model: str, error_type: str) -> None:
    """The span and metrics of one interrupted call of ``model`` (and nothing else)."""
    assert span.end_time is not None
    assert span.attributes is not None
    assert span.attributes[A.ERROR_TYPE] == error_type
    assert span.status.status_code is StatusCode.UNSET
    assert [e.name for e in span.events] == []  # no `exception` event
    assert cap.metric(A.METRIC_PREDICTION_CALLS, **_model(model)).value == 1
    duration = cap.metric(A.METRIC_PREDICTION_DURATION, **_model(model))
    assert duration.count == 1
    assert A.ERROR_TYPE not in duration.attributes
    with pytest.raises(LookupError, match="0 data points"):
        cap.metric(A.METRIC_PREDICTION_ERRORS, **_model(model))


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_sync_call_interrupted_is_not_an_error(cap: Captured, kind: type[BaseException]) -> None:
    interrupt = kind()
    model = f"interrupted-sync-{kind.__name__}"

    @modelotel.instrument(model=model)
    def predict(x: Any) -> Any:
        raise interrupt

    before = trace.get_current_span()
    with pytest.raises(kind) as info:
        predict([[1.0, 2.0]])
    assert info.value is interrupt
    assert trace.get_current_span() is before  # the span's context was left
    (span,) = cap.spans()
    _assert_interrupted(cap, span, model, kind.__qualname__)


def test_exception_still_fails_next_to_an_interrupt(cap: Captured) -> None:
    """Same model: the ValueError is the one error; the interrupt only counts as a call."""
    model = "interrupted-mixed"

    @modelotel.instrument(model=model)
    def predict(x: Any) -> Any:
        raise x

    with pytest.raises(ValueError):
        predict(ValueError("bad"))
    with pytest.raises(KeyboardInterrupt):
        predict(KeyboardInterrupt())
    failed, interrupted = cap.spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError"
    assert [e.name for e in failed.events] == [A.EVENT_EXCEPTION]
    assert interrupted.status.status_code is StatusCode.UNSET
    assert interrupted.attributes is not None
    assert interrupted.attributes[A.ERROR_TYPE] == "KeyboardInterrupt"
    assert cap.metric(A.METRIC_PREDICTION_CALLS, **_model(model)).value == 2
    errors = cap.metric(A.METRIC_PREDICTION_ERRORS, **_model(model))
    assert (errors.value, errors.attributes[A.ERROR_TYPE]) == (1, "ValueError")
    ok = [
        p
        for p in cap.collect()
        if p.name == A.METRIC_PREDICTION_DURATION
        and p.attributes == {A.ML_MODEL_NAME: model, A.ML_MODEL_VERSION: ""}
    ]
    assert [p.count for p in ok] == [1]  # the interrupted call, without error.type
    err = cap.metric(A.METRIC_PREDICTION_DURATION, **_model(model), **{A.ERROR_TYPE: "ValueError"})
    assert err.count == 1


def test_cancelled_task_is_not_an_error(cap: Captured) -> None:
    """A request task cancelled mid-await (the client went away)."""
    model = "interrupted-async-cancel"
    started = asyncio.Event()

    @modelotel.instrument(model=model)
    async def predict(x: Any) -> Any:
        started.set()
        await asyncio.sleep(60)
        return x

    async def main() -> None:
        task = asyncio.create_task(predict([[1.0]]))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())
    (span,) = cap.spans()
    _assert_interrupted(cap, span, model, "CancelledError")


def test_cancelled_error_raised_by_the_model_is_the_same_object(cap: Captured) -> None:
    err = asyncio.CancelledError("stop")
    model = "interrupted-async-raise"

    @modelotel.instrument(model=model)
    async def predict(x: Any) -> Any:
        raise err

    async def main() -> BaseException:
        try:
            await predict([[1.0]])
        except asyncio.CancelledError as exc:
            return exc
        raise AssertionError("not raised")

    assert asyncio.run(main()) is err
    (span,) = cap.spans()
    _assert_interrupted(cap, span, model, "CancelledError")


def test_async_stream_cancelled_is_not_an_error(cap: Captured) -> None:
    model = "interrupted-agen"
    second = asyncio.Event()

    @modelotel.instrument(model=model)
    async def stream(x: Any) -> AsyncIterator[int]:
        yield 1
        second.set()
        await asyncio.sleep(60)
        yield 2

    async def consume(got: list[int]) -> None:
        async for v in stream([[1.0]]):
            got.append(v)

    async def main() -> list[int]:
        got: list[int] = []
        task = asyncio.create_task(consume(got))
        await second.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return got

    assert asyncio.run(main()) == [1]
    (span,) = cap.spans()
    _assert_interrupted(cap, span, model, "CancelledError")
    assert span.attributes is not None
    assert span.attributes[A.ML_STREAM_ITEMS] == 1
    assert A.ML_STREAM_CLOSED_EARLY not in span.attributes


def test_stream_interrupted_by_the_consumer_is_not_an_error(cap: Captured) -> None:
    """KeyboardInterrupt thrown into a stream, not caught by the model: passes through."""
    model = "interrupted-gen"

    @modelotel.instrument(model=model)
    def stream(x: Any) -> Generator[int, None, None]:
        yield 1
        yield 2

    gen = stream([[1.0]])
    assert next(gen) == 1
    interrupt = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt) as info:
        gen.throw(interrupt)
    assert info.value is interrupt
    (span,) = cap.spans()
    _assert_interrupted(cap, span, model, "KeyboardInterrupt")


def test_observe_cancelled_is_not_an_error(cap: Captured) -> None:
    model = "interrupted-observe"
    err = asyncio.CancelledError()

    async def handler() -> None:
        async with modelotel.observe(model) as call:
            call.record_inputs([[1.0, 2.0]])
            raise err

    async def main() -> BaseException:
        try:
            await handler()
        except asyncio.CancelledError as exc:
            return exc
        raise AssertionError("not raised")

    assert asyncio.run(main()) is err
    (span,) = cap.spans()
    _assert_interrupted(cap, span, model, "CancelledError")


# --------------------------------------------------------------- payload sampling
class _Log:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def emit(self, **kw: Any) -> None:
        self.records.append(kw)


def _payload_hook(cfg: PayloadConfig) -> tuple[PayloadPart, _Log]:
    log = _Log()
    hook = PayloadPart(
        model="m", version="1", rate=0.0, config=cfg, logger=lambda: cast(Any, log)
    )
    return hook, log


def test_payload_keeps_errors_but_not_interrupted_calls() -> None:
    cfg = PayloadConfig(max_records_per_second=1e9, max_bytes_per_second=1e12)
    hook, log = _payload_hook(cfg)
    run(hook, fake_call(inputs=[1], error=asyncio.CancelledError()))
    run(hook, fake_call(inputs=[1], error=KeyboardInterrupt()))
    run(hook, fake_call(inputs=[1], error=ValueError("boom")))
    run(hook, fake_call(inputs=[1], error=SystemExit(), checks=["schema_missing_feature"]))
    for records in (log.records,):
        kept = [
            (r["attributes"][A.ML_PAYLOAD_SAMPLE_REASON], r["attributes"][A.ERROR_TYPE])
            for r in records
        ]
        # an interrupted call where a check fired is kept for the check, not as an error
        assert kept == [("error", "ValueError"), ("check", "SystemExit")]
    assert hook.decide(fake_call(inputs=[1], error=asyncio.CancelledError())) is None
    assert hook.decide(fake_call(inputs=[1], error=ValueError("boom"))) == "error"


def test_payload_end_to_end_cancelled_call_not_kept_as_error(cap: Captured) -> None:
    model = "interrupted-payload"

    @modelotel.instrument(model=model, payload=PayloadConfig(max_records_per_second=100))
    def predict(x: Any) -> Any:
        raise x[0]

    with pytest.raises(asyncio.CancelledError):
        predict([asyncio.CancelledError()])
    assert cap.logs() == []
    with pytest.raises(ValueError):
        predict([ValueError("bad")])
    (record,) = cap.logs()
    attrs = record.log_record.attributes
    assert attrs[A.ML_PAYLOAD_SAMPLE_REASON] == "error"
    assert attrs[A.ERROR_TYPE] == "ValueError"


def test_keyboard_interrupt_in_observe_ends_the_span_and_passes_through() -> None:
    interrupt = KeyboardInterrupt()

    def block() -> None:
        with modelotel.observe("host-ki") as call:
            call.record_inputs(np.ones((2, 2)))
            raise interrupt

    with capture() as cap:
        with pytest.raises(KeyboardInterrupt) as info:
            block()
        assert info.value is interrupt
        assert trace.get_current_span() is trace.INVALID_SPAN  # the context was restored
        (span,) = cap.spans()
        calls = cap.metric(A.METRIC_PREDICTION_CALLS, **{A.ML_MODEL_NAME: "host-ki"})
    assert span.end_time is not None
    assert span.attributes is not None
    assert span.attributes[A.ERROR_TYPE] == "KeyboardInterrupt"
    assert span.status.status_code is StatusCode.UNSET  # interrupted, not a failed prediction
    assert calls.value == 1
    assert not [p for p in cap.collect() if p.name == A.METRIC_PREDICTION_ERRORS]
