"""instrument() on every callable kind: spans, attributes, introspection, streams."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import StatusCode

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel import attributes as tn
from modelotel.testing import Captured, capture


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


def _only_span(cap: Captured) -> Any:
    spans = cap.spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def test_plain_function_span_and_attributes(cap: Captured) -> None:
    @modelotel.instrument(model="kinds-plain", version="7")
    def predict(x_in: Any) -> list[int]:
        """Docstring kept."""
        return [1 for _ in x_in]

    x_in = np.zeros((4, 3))
    assert predict(x_in) == [1, 1, 1, 1]
    span = _only_span(cap)
    assert span.name == "predict kinds-plain"
    attrs = dict(span.attributes)
    assert attrs[tn.ML_MODEL_NAME] == "kinds-plain"
    assert attrs[tn.ML_MODEL_VERSION] == "7"
    assert attrs[tn.ML_INPUT_ROWS] == 4
    assert attrs[tn.ML_INPUT_FEATURES] == 3
    pid = attrs[tn.ML_PREDICTION_ID]
    assert isinstance(pid, str)
    assert len(pid) == 16
    int(pid, 16)
    assert span.status.status_code == StatusCode.UNSET
    assert span.instrumentation_scope.name == tn.SCOPE_NAME
    assert span.instrumentation_scope.version == modelotel.__version__
    assert predict.__name__ == "predict"
    assert predict.__doc__ == "Docstring kept."
    assert list(inspect.signature(predict).parameters) == ["x_in"]


def test_bare_decorator_uses_qualified_name(cap: Captured) -> None:
    @modelotel.instrument
    def score(x: float) -> float:
        return x * 2

    assert score(2.0) == 4.0
    span = _only_span(cap)
    # <locals> is dropped from the default name
    assert span.name == "predict test_bare_decorator_uses_qualified_name.score"
    assert span.attributes[tn.ML_MODEL_VERSION] == ""


def test_prediction_ids_are_unique(cap: Captured) -> None:
    @modelotel.instrument(model="kinds-ids")
    def predict(x: int) -> int:
        return x

    for i in range(50):
        predict(i)
    ids = {s.attributes[tn.ML_PREDICTION_ID] for s in cap.spans()}
    assert len(ids) == 50


def test_methods_staticmethods_classmethods(cap: Captured) -> None:
    class Model:
        factor = 3

        @modelotel.instrument(model="kinds-method")
        def predict(self, x_in: list[float]) -> list[float]:
            return [x * self.factor for x in x_in]

        @staticmethod
        @modelotel.instrument(model="kinds-static")
        def static_predict(x_in: list[float]) -> list[float]:
            return list(x_in)

        @modelotel.instrument(model="kinds-static-outer")
        @staticmethod
        def static_outer(x_in: list[float]) -> list[float]:
            return list(x_in)

        @classmethod
        @modelotel.instrument(model="kinds-class")
        def class_predict(cls, x_in: list[float]) -> list[float]:
            return [x * cls.factor for x in x_in]

        @modelotel.instrument(model="kinds-class-outer")
        @classmethod
        def class_outer(cls, x_in: list[float]) -> list[float]:
            return [x * cls.factor for x in x_in]

    m = Model()
    assert m.predict([1.0, 2.0]) == [3.0, 6.0]
    assert Model.predict(m, [1.0]) == [3.0]
    assert m.static_predict([1.0]) == [1.0]
    assert Model.static_predict([1.0, 2.0]) == [1.0, 2.0]
    assert Model.static_outer([5.0]) == [5.0]
    assert Model.class_predict([1.0]) == [3.0]
    assert m.class_outer([2.0]) == [6.0]
    spans = cap.spans()
    assert [s.name for s in spans] == [
        "predict kinds-method",
        "predict kinds-method",
        "predict kinds-static",
        "predict kinds-static",
        "predict kinds-static-outer",
        "predict kinds-class",
        "predict kinds-class-outer",
    ]
    # the input is the first argument after self/cls
    assert [s.attributes.get(tn.ML_INPUT_ROWS) for s in spans] == [2, 1, 1, 2, 1, 1, 1]
    assert list(inspect.signature(m.predict).parameters) == ["x_in"]


def test_coroutine(cap: Captured) -> None:
    @modelotel.instrument(model="kinds-async")
    async def predict(x_in: list[int]) -> int:
        await asyncio.sleep(0.01)
        return sum(x_in)

    assert inspect.iscoroutinefunction(predict)
    assert asyncio.run(predict([1, 2, 3])) == 6
    span = _only_span(cap)
    assert span.name == "predict kinds-async"
    # the span covers the awaited work, not only the creation of the coroutine
    assert span.end_time - span.start_time >= 5_000_000
    assert span.attributes[tn.ML_INPUT_ROWS] == 3


def test_async_nesting_and_no_leak(cap: Captured) -> None:
    tracer = cap.tracer_provider.get_tracer("t")

    @modelotel.instrument(model="kinds-async-child")
    async def predict(x: int) -> int:
        inner = trace.get_current_span()
        assert inner.get_span_context().is_valid
        await asyncio.sleep(0)
        return x

    async def main() -> None:
        with tracer.start_as_current_span("request"):
            await asyncio.gather(predict(1), predict(2))
            assert trace.get_current_span().name == "request"  # type: ignore[attr-defined]

    asyncio.run(main())
    spans = {s.name: s for s in cap.spans()}
    request = spans["request"]
    children = [s for s in cap.spans() if s.name == "predict kinds-async-child"]
    assert len(children) == 2
    for child in children:
        assert child.parent is not None
        assert child.parent.span_id == request.context.span_id


def test_generator_span_per_stream(cap: Captured) -> None:
    seen_inside: list[bool] = []

    @modelotel.instrument(model="kinds-gen")
    def stream(x_in: list[int]) -> Iterator[int]:
        for x in x_in:
            seen_inside.append(trace.get_current_span().is_recording())
            yield x * 10
        return

    assert inspect.isgeneratorfunction(stream)
    gen = stream([1, 2, 3])
    assert cap.spans() == []  # nothing before the first iteration
    out = []
    for item in gen:
        # between items the caller does not see our span
        assert not trace.get_current_span().is_recording()
        out.append(item)
    assert out == [10, 20, 30]
    assert seen_inside == [True, True, True]
    span = _only_span(cap)
    assert span.name == "predict kinds-gen"
    assert span.attributes[tn.ML_STREAM_ITEMS] == 3
    assert tn.ML_STREAM_CLOSED_EARLY not in span.attributes
    assert span.status.status_code == StatusCode.UNSET


def test_generator_closed_early_is_not_an_error(cap: Captured) -> None:
    closed = []

    @modelotel.instrument(model="kinds-gen-close")
    def stream() -> Iterator[int]:
        try:
            yield 1
            yield 2
            yield 3
        finally:
            closed.append(True)

    gen = stream()
    assert next(gen) == 1
    gen.close()
    assert closed == [True]
    span = _only_span(cap)
    assert span.attributes[tn.ML_STREAM_ITEMS] == 1
    assert span.attributes[tn.ML_STREAM_CLOSED_EARLY] is True
    assert span.status.status_code == StatusCode.UNSET
    assert tn.ERROR_TYPE not in span.attributes


def test_generator_raises(cap: Captured) -> None:
    class BoomError(Exception):
        pass

    err = BoomError("x")

    @modelotel.instrument(model="kinds-gen-raise")
    def stream() -> Iterator[int]:
        yield 1
        raise err

    gen = stream()
    assert next(gen) == 1
    with pytest.raises(BoomError) as info:
        next(gen)
    assert info.value is err
    span = _only_span(cap)
    assert span.attributes[tn.ERROR_TYPE] == "test_generator_raises.<locals>.BoomError"
    assert span.status.status_code == StatusCode.ERROR


def test_generator_send_throw_and_return_value(cap: Captured) -> None:
    @modelotel.instrument(model="kinds-gen-send")
    def echo() -> Iterator[Any]:
        received = []
        try:
            while True:
                got = yield len(received)
                received.append(got)
        except KeyError:
            yield "handled"
        return received

    gen = echo()
    assert next(gen) == 0
    assert gen.send("a") == 1
    assert gen.throw(KeyError("k")) == "handled"
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == ["a"]
    span = _only_span(cap)
    assert span.attributes[tn.ML_STREAM_ITEMS] == 3


def test_async_generator(cap: Captured) -> None:
    @modelotel.instrument(model="kinds-agen")
    async def stream(n: int) -> AsyncIterator[int]:
        for i in range(n):
            assert trace.get_current_span().is_recording()
            await asyncio.sleep(0)
            yield i

    assert inspect.isasyncgenfunction(stream)

    async def consume() -> list[int]:
        out = []
        async for i in stream(4):
            assert not trace.get_current_span().is_recording()
            out.append(i)
        return out

    assert asyncio.run(consume()) == [0, 1, 2, 3]
    span = _only_span(cap)
    assert span.attributes[tn.ML_STREAM_ITEMS] == 4


def test_async_generator_closed_early_and_raise(cap: Captured) -> None:
    @modelotel.instrument(model="kinds-agen-close")
    async def stream() -> AsyncIterator[int]:
        yield 1
        yield 2

    @modelotel.instrument(model="kinds-agen-raise")
    async def bad() -> AsyncIterator[int]:
        yield 1
        raise ValueError("bad stream")

    async def main() -> None:
        agen = stream()
        assert await agen.__anext__() == 1
        await agen.aclose()
        with pytest.raises(ValueError, match="bad stream"):
            async for _ in bad():
                pass

    asyncio.run(main())
    spans = {s.name: s for s in cap.spans()}
    closed = spans["predict kinds-agen-close"]
    assert closed.attributes[tn.ML_STREAM_CLOSED_EARLY] is True
    assert closed.status.status_code == StatusCode.UNSET
    failed = spans["predict kinds-agen-raise"]
    assert failed.attributes[tn.ERROR_TYPE] == "ValueError"
    assert failed.attributes[tn.ML_STREAM_ITEMS] == 1


def test_child_of_current_span(cap: Captured) -> None:
    tracer = cap.tracer_provider.get_tracer("t")

    @modelotel.instrument(model="kinds-inner")
    def inner(x: int) -> int:
        return x

    @modelotel.instrument(model="kinds-outer")
    def outer(x: int) -> int:
        return inner(x) + 1

    with tracer.start_as_current_span("request") as request:
        assert outer(1) == 2
    spans = {s.name: s for s in cap.spans()}
    assert spans["predict kinds-outer"].parent.span_id == request.get_span_context().span_id
    assert (
        spans["predict kinds-inner"].parent.span_id == spans["predict kinds-outer"].context.span_id
    )
    assert not trace.get_current_span().is_recording()


def test_input_arg_by_name_and_position(cap: Captured) -> None:
    @modelotel.instrument(model="kinds-inarg", input_arg="x_in")
    def predict(threshold: float, x_in: list[list[float]]) -> int:
        return len(x_in)

    @modelotel.instrument(model="kinds-inarg-pos", input_arg=1)
    def predict2(threshold: float, x_in: list[list[float]]) -> int:
        return len(x_in)

    predict(0.5, [[1.0], [2.0]])
    predict(0.5, x_in=[[1.0], [2.0], [3.0]])
    predict2(0.5, [[1.0]])
    assert [s.attributes[tn.ML_INPUT_ROWS] for s in cap.spans()] == [2, 3, 1]
    with pytest.raises(ValueError, match="not a parameter"):
        modelotel.instrument(input_arg="nope")(predict2.__wrapped__)


def test_inputs_without_shape_get_no_rows(cap: Captured) -> None:
    @modelotel.instrument(model="kinds-noshape")
    def predict(x: object = None) -> int:
        return 1

    predict({"a": 1})
    predict()
    for span in cap.spans():
        assert tn.ML_INPUT_ROWS not in span.attributes


def test_not_sampled_span_still_counts_metrics() -> None:
    @modelotel.instrument(model="kinds-unsampled")
    def predict(x_in: list[int]) -> int:
        assert trace.get_current_span().get_span_context().is_valid
        return len(x_in)

    with capture(sampler=ALWAYS_OFF) as cap:
        for _ in range(3):
            predict([1, 2])
        assert cap.spans() == []
        assert (
            cap.metric(tn.METRIC_PREDICTION_CALLS, **{tn.ML_MODEL_NAME: "kinds-unsampled"}).value
            == 3
        )
        assert (
            cap.metric(tn.METRIC_PREDICTION_ROWS, **{tn.ML_MODEL_NAME: "kinds-unsampled"}).value
            == 6
        )
        assert (
            cap.metric(tn.METRIC_PREDICTION_DURATION, **{tn.ML_MODEL_NAME: "kinds-unsampled"}).count
            == 3
        )


def test_bad_options_fail_at_decoration() -> None:
    with pytest.raises(ValueError, match="task="):
        modelotel.instrument(task="clustering")
    with pytest.raises(TypeError, match="version="):
        modelotel.instrument(version=["1"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_features="):
        modelotel.instrument(max_features=0)
    with pytest.raises(ValueError, match="payload_sample_rate="):
        modelotel.instrument(payload_sample_rate=1.5)
    with pytest.raises(TypeError, match="not callable"):
        modelotel.instrument(42)  # type: ignore[call-overload]


def test_not_sampled_span_gets_no_span_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.trace import NonRecordingSpan

    calls: list[str] = []
    for method in ("set_attribute", "set_attributes", "add_event", "set_status"):
        monkeypatch.setattr(
            NonRecordingSpan, method, lambda self, *a, _m=method, **k: calls.append(_m)
        )

    @modelotel.instrument(model="kinds-unsampled-calls")
    def predict(x: Any) -> Any:
        if x is None:
            raise ValueError("no input")
        return x

    with capture(sampler=ALWAYS_OFF):
        from modelotel import _monitor

        predict(np.zeros((2, 3)))
        mon = next(m for m in _monitor.monitors() if m.config.model == "kinds-unsampled-calls")
        mon.ends = ()  # only the core's own calls are counted here
        predict(np.zeros((2, 3)))
        with pytest.raises(ValueError, match="no input"):
            predict(None)
    assert calls == []


def test_streams_called_with_bad_arguments_leave_no_open_span(cap: Captured) -> None:
    from opentelemetry.sdk.trace import SpanProcessor

    started: list[str] = []

    class Starts(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            started.append(span.name)

    cap.tracer_provider.add_span_processor(Starts())

    @modelotel.instrument(model="kinds-gen-badargs")
    def stream(n: int) -> Iterator[int]:
        yield n

    @modelotel.instrument(model="kinds-agen-badargs")
    async def astream(n: int) -> AsyncIterator[int]:
        yield n

    with pytest.raises(TypeError):
        next(stream(1, 2))  # type: ignore[call-arg]

    async def main() -> None:
        with pytest.raises(TypeError):
            await astream(1, 2).__anext__()  # type: ignore[call-arg]

    asyncio.run(main())
    assert started == []  # no span was started (and left open) for either stream
    assert cap.spans() == []


def test_input_shapes_of_common_and_odd_inputs() -> None:
    import pandas as pd

    from modelotel._prediction import _input_shape
    from modelotel._types import MISSING

    class Symbolic:
        shape = (None, 3)  # a symbolic batch dimension

    class Garbage:
        shape = ("a", "b")

    class SizeLike(tuple):  # torch.Size is a tuple subclass
        pass

    class Tensorish:
        shape = SizeLike((4, 5))

    assert _input_shape(np.zeros((3, 4))) == (3, 4)
    assert _input_shape(np.zeros((2, 3, 4))) == (2, None)  # axis 1 of images: no features
    assert _input_shape(np.zeros(5)) == (5, None)
    assert _input_shape(np.float64(1.0)) == (1, None)
    assert _input_shape(pd.DataFrame({"a": [1, 2], "b": [3, 4]})) == (2, 2)
    assert _input_shape([[1, 2, 3], [4, 5, 6]]) == (2, 3)
    assert _input_shape(["a", "b"]) == (2, None)
    assert _input_shape(Symbolic()) == (None, 3)
    assert _input_shape(Garbage()) == (None, None)
    assert _input_shape(Tensorish()) == (4, 5)
    assert _input_shape({"a": [1]}) == (None, None)
    assert _input_shape(MISSING) == (None, None)
    assert _input_shape(None) == (None, None)


def test_input_shape_of_a_frame_is_its_shape_however_it_is_read() -> None:
    import pandas as pd

    from modelotel._prediction import _input_shape
    from modelotel.stats import frames

    one_block = pd.DataFrame(np.zeros((3, 5)), columns=list("abcde"))
    mixed = pd.DataFrame({"a": [1.0, 2.0], "b": [1, 2], "c": pd.Categorical(["x", "y"]),
                          "d": pd.array(["u", None], dtype="str"), "e": [3.0, 4.0],
                          "f": pd.array([1, None], dtype="Int64"),
                          "g": pd.date_range("2026-01-01", periods=2, tz="UTC")})
    strings_only = pd.DataFrame({"s": pd.array(["u", "v", "w"], dtype="str")})
    reordered = one_block[["e", "a", "c"]]
    wide_view = pd.DataFrame(np.zeros((4, 6)))[[5, 0]]
    empty = pd.DataFrame(np.zeros((0, 2)))
    one_row = pd.DataFrame([{"x": 1.0, "y": "z", "w": 2}])
    frames.FRAME_TYPES.discard(pd.DataFrame)  # not read by the statistics yet: .shape
    assert _input_shape(one_block) == one_block.shape
    frames.FRAME_TYPES.add(pd.DataFrame)  # read from its blocks from now on
    assert frames.frame_shape(one_block) == (3, 5)
    assert frames.frame_shape(mixed) == (2, 7)  # several blocks, extension arrays among them
    assert frames.frame_shape(strings_only) is None  # no numpy block: .shape
    for df in (one_block, mixed, strings_only, reordered, wide_view, empty, one_row):
        assert _input_shape(df) == df.shape


def test_nested_models_get_nested_spans_and_their_own_statistics() -> None:
    @modelotel.instrument(model="host-inner")
    def inner(x: np.ndarray) -> np.ndarray:
        return x[:, 0] * 2

    @modelotel.instrument(model="host-outer")
    def outer(x: np.ndarray) -> np.ndarray:
        return inner(x[:, :1]) + 1

    with capture() as cap:
        outer(np.ones((3, 2)))
        spans = {s.name: s for s in cap.spans()}
        inner_n = cap.metric(A.METRIC_FEATURE_COUNT,
                             **{A.ML_MODEL_NAME: "host-inner", A.ML_FEATURE: "0"})
        outer_n = cap.metric(A.METRIC_FEATURE_COUNT,
                             **{A.ML_MODEL_NAME: "host-outer", A.ML_FEATURE: "1"})
    inner_span = spans["predict host-inner"]
    outer_span = spans["predict host-outer"]
    assert inner_span.parent is not None
    assert inner_span.parent.span_id == outer_span.context.span_id
    assert (inner_n.value, outer_n.value) == (3, 3)
