"""instrument(): exceptions, double decoration, pickling, threads, kill switch, suppression."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import os
import pickle
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cloudpickle
import numpy as np
import pytest
from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import StatusCode

import modelotel
from modelotel import _safety
from modelotel import attributes as A  # noqa: N812
from modelotel import attributes as tn
from modelotel._payload.redact import MAX_EXCEPTION_TEXT
from modelotel._runtime import runtime
from modelotel._types import MISSING
from modelotel.stats import reasons as R  # noqa: N812
from modelotel.testing import Captured, capture


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


@modelotel.instrument(model="behaviour-module-level", version="1")
def module_level_predict(x: list[int]) -> int:
    return sum(x)


# --------------------------------------------------------------- exception transparency
class ModelError(Exception):
    pass


def test_exception_is_the_same_object_with_the_same_traceback(cap: Captured) -> None:
    err = ModelError("bad input")
    err.user_marker = "kept"  # type: ignore[attr-defined]

    @modelotel.instrument(model="behaviour-raise")
    def predict(x: int) -> int:
        raise err  # the user's raise line

    with pytest.raises(ModelError) as info:
        predict(1)
    assert info.value is err
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert info.value.user_marker == "kept"  # type: ignore[attr-defined]
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].name == "predict"
    assert frames[-1].line == "raise err  # the user's raise line"
    (span,) = cap.spans()
    assert span.attributes[tn.ERROR_TYPE] == "ModelError"
    assert span.status.description == "ModelError"
    (event,) = span.events
    assert event.name == "exception"
    # the user's text stays out of telemetry unless payload capture is on
    assert dict(event.attributes) == {tn.EXCEPTION_TYPE: "ModelError"}
    point = cap.metric(tn.METRIC_PREDICTION_ERRORS, **{tn.ML_MODEL_NAME: "behaviour-raise"})
    assert point.value == 1
    assert point.attributes[tn.ERROR_TYPE] == "ModelError"
    dur = cap.metric(
        tn.METRIC_PREDICTION_DURATION,
        **{tn.ML_MODEL_NAME: "behaviour-raise", tn.ERROR_TYPE: "ModelError"},
    )
    assert dur.count == 1


def test_async_exception_and_base_exceptions_pass_through(cap: Captured) -> None:
    err = ValueError("async bad")

    @modelotel.instrument(model="behaviour-async-raise")
    async def predict() -> None:
        raise err

    @modelotel.instrument(model="behaviour-interrupt")
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(ValueError) as info:
        asyncio.run(predict())
    assert info.value is err
    with pytest.raises(KeyboardInterrupt):
        interrupted()
    names = {s.name: s.attributes[tn.ERROR_TYPE] for s in cap.spans()}
    assert names == {
        "predict behaviour-async-raise": "ValueError",
        "predict behaviour-interrupt": "KeyboardInterrupt",
    }
    # only an Exception fails the call; a KeyboardInterrupt interrupts it (status UNSET,
    # not counted in ml.prediction.errors): tests/test_interrupted_calls.py has the rest
    status = {s.name: s.status.status_code for s in cap.spans()}
    assert status == {
        "predict behaviour-async-raise": StatusCode.ERROR,
        "predict behaviour-interrupt": StatusCode.UNSET,
    }
    errors = [p.attributes[tn.ML_MODEL_NAME] for p in cap.collect()
              if p.name == tn.METRIC_PREDICTION_ERRORS]
    assert errors == ["behaviour-async-raise"]


def test_result_is_the_same_object(cap: Captured) -> None:
    out = {"scores": [0.1, 0.9]}

    @modelotel.instrument(model="behaviour-result")
    def predict(x: Any) -> Any:
        return out

    inputs = [[1.0, 2.0]]
    snapshot = json.dumps(inputs)
    assert predict(inputs) is out
    assert json.dumps(inputs) == snapshot  # inputs not mutated


# --------------------------------------------------------------- double decoration
def test_second_instrument_is_a_noop(cap: Captured) -> None:
    def predict(x: int) -> int:
        return x

    once = modelotel.instrument(model="behaviour-once")(predict)
    twice = modelotel.instrument(model="behaviour-twice")(once)
    bare_twice = modelotel.instrument(once)
    assert twice is once
    assert bare_twice is once

    def passthrough(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def inner(*a: Any, **k: Any) -> Any:
            return fn(*a, **k)

        return inner

    layered = modelotel.instrument(model="behaviour-layered")(passthrough(once))
    twice(1)
    layered(2)
    assert [s.name for s in cap.spans()] == ["predict behaviour-once", "predict behaviour-once"]


# --------------------------------------------------------------- pickling
def test_pickle_module_level_function_by_reference(cap: Captured) -> None:
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        clone = loads(dumps(module_level_predict))
        assert clone is module_level_predict
    assert module_level_predict([1, 2]) == 3


def test_cloudpickle_local_function_round_trip(cap: Captured) -> None:
    factor = 10

    @modelotel.instrument(model="behaviour-cloudpickle", version="5", task="regression")
    def predict(x: list[int]) -> list[int]:
        return [v * factor for v in x]

    clone = cloudpickle.loads(cloudpickle.dumps(predict))
    assert clone is not predict
    assert clone([1, 2]) == [10, 20]
    assert clone.__name__ == "predict"
    (span,) = cap.spans()
    assert span.name == "predict behaviour-cloudpickle"
    assert span.attributes[tn.ML_MODEL_VERSION] == "5"
    # re-instrumenting the clone is a no-op too
    assert modelotel.instrument(clone) is clone


def test_cloudpickle_ships_to_another_process(tmp_path: Any) -> None:
    @modelotel.instrument(model="behaviour-ship", version="2")
    def predict(x: list[int]) -> int:
        return len(x)

    blob = tmp_path / "fn.pkl"
    blob.write_bytes(cloudpickle.dumps(predict))
    code = (
        "import cloudpickle, sys\n"
        "from modelotel.testing import capture\n"
        "fn = cloudpickle.loads(open(sys.argv[1], 'rb').read())\n"
        "with capture() as cap:\n"
        "    r = fn([1, 2, 3])\n"
        "    s = cap.spans()[0]\n"
        "    print(r, s.name, s.attributes['ml.model.version'], s.attributes['ml.input.rows'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(blob)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "3 predict behaviour-ship 2 3"


# --------------------------------------------------------------- threads
def test_thread_pool_with_copied_context_nests_under_the_request(cap: Captured) -> None:
    tracer = cap.tracer_provider.get_tracer("t")

    @modelotel.instrument(model="behaviour-thread")
    def predict(x: int) -> int:
        return x

    async def handler() -> list[int]:
        loop = asyncio.get_running_loop()
        with tracer.start_as_current_span("request"):
            ctx = contextvars.copy_context()
            a = await loop.run_in_executor(None, functools.partial(ctx.run, predict, 1))
            b = await asyncio.to_thread(predict, 2)  # copies the context itself
        return [a, b]

    assert asyncio.run(handler()) == [1, 2]
    spans = {s.name: s for s in cap.spans()}
    request = spans["request"]
    children = [s for s in cap.spans() if s.name == "predict behaviour-thread"]
    assert len(children) == 2
    assert all(c.parent.span_id == request.context.span_id for c in children)


def test_concurrent_calls_count_exactly(cap: Captured) -> None:
    @modelotel.instrument(model="behaviour-concurrent")
    def predict(x: list[int]) -> int:
        return len(x)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: predict([i, i]), range(800)))
    attrs = {tn.ML_MODEL_NAME: "behaviour-concurrent"}
    assert cap.metric(tn.METRIC_PREDICTION_CALLS, **attrs).value == 800
    assert cap.metric(tn.METRIC_PREDICTION_ROWS, **attrs).value == 1600
    assert cap.metric(tn.METRIC_PREDICTION_DURATION, **attrs).count == 800
    assert len(cap.spans()) == 800
    assert threading.active_count() >= 1


# --------------------------------------------------------------- kill switch
@pytest.fixture
def disabled_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MODELOTEL_ENABLED", "false")
    assert runtime.reload_settings().enabled is False
    yield
    monkeypatch.delenv("MODELOTEL_ENABLED")
    assert runtime.reload_settings().enabled is True


@pytest.mark.usefixtures("disabled_env")
def test_kill_switch_is_a_pure_pass_through(cap: Captured) -> None:
    def predict(x: int) -> int:
        return x

    class Model:
        def predict(self, x: int) -> int:
            return x

    assert modelotel.instrument(predict) is predict
    assert modelotel.instrument(model="m")(predict) is predict
    model = Model()
    assert modelotel.wrap(model) is model
    with modelotel.observe("behaviour-off") as call:
        call.record_inputs([1, 2])
        call.set_attribute("k", "v")
    assert call.inputs is MISSING  # switched off, the prediction keeps nothing it is given
    assert cap.spans() == []
    assert [p for p in cap.metrics() if p.name.startswith("ml.prediction")] == []


@pytest.mark.parametrize("value", ["0", "no", "OFF", " False "])
def test_kill_switch_spellings(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MODELOTEL_ENABLED", value)
    try:
        assert runtime.reload_settings().enabled is False
    finally:
        monkeypatch.delenv("MODELOTEL_ENABLED")
        runtime.reload_settings()


def test_kill_switch_bad_value_warns_once_and_stays_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MODELOTEL_ENABLED", "maybe")
    try:
        assert runtime.reload_settings().enabled is True
        assert runtime.reload_settings().enabled is True
    finally:
        monkeypatch.delenv("MODELOTEL_ENABLED")
        runtime.reload_settings()
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "MODELOTEL_ENABLED" in warnings[0].getMessage()


def test_runtime_disable_passes_through(cap: Captured) -> None:
    @modelotel.instrument(model="behaviour-runtime-off")
    def predict(x: int) -> int:
        return x

    runtime.set_enabled(False)
    try:
        assert predict(3) == 3
    finally:
        runtime.set_enabled(True)
    assert cap.spans() == []
    predict(4)
    assert len(cap.spans()) == 1


# --------------------------------------------------------------- suppression
def test_suppress_block(cap: Captured) -> None:
    tracer = cap.tracer_provider.get_tracer("t")

    @modelotel.instrument(model="behaviour-suppressed")
    def predict(x: int) -> int:
        with tracer.start_as_current_span("inside"):  # other instrumentation is not silenced
            return x

    @modelotel.instrument(model="behaviour-suppressed-gen")
    def stream() -> Iterator[int]:
        yield 1

    with modelotel.suppress():
        assert predict(1) == 1
        assert list(stream()) == [1]
        with modelotel.observe("behaviour-suppressed-obs") as call:
            call.record_inputs([1])
    assert [s.name for s in cap.spans()] == ["inside"]
    predict(2)
    assert [s.name for s in cap.spans()] == ["inside", "inside", "predict behaviour-suppressed"]


def test_suppress_reaches_threads_that_copy_the_context(cap: Captured) -> None:
    @modelotel.instrument(model="behaviour-suppressed-thread")
    def predict(x: int) -> int:
        return x

    async def main() -> int:
        with modelotel.suppress():
            return await asyncio.to_thread(predict, 5)

    assert asyncio.run(main()) == 5
    assert cap.spans() == []


@pytest.mark.parametrize("key", [_SUPPRESS_INSTRUMENTATION_KEY, "suppress_instrumentation"])
def test_otel_contrib_suppression_key_is_honoured(cap: Captured, key: str) -> None:
    @modelotel.instrument(model="behaviour-contrib-suppressed")
    def predict(x: int) -> int:
        return x

    token = otel_context.attach(otel_context.set_value(key, True))
    try:
        assert predict(1) == 1
    finally:
        otel_context.detach(token)
    assert cap.spans() == []
    assert os.environ.get("MODELOTEL_ENABLED") is None


def test_exception_text_is_exported_only_with_payload_capture_on(cap: Captured) -> None:
    canary = "CANARY-jane@example.com"

    @modelotel.instrument(model="behaviour-raise-quiet")
    def quiet(x: int) -> int:
        raise ValueError(f"could not convert {canary!r}")

    @modelotel.instrument(model="behaviour-raise-loud", payload_sample_rate=1.0)
    def loud(x: int) -> int:
        raise ValueError(f"could not convert {canary!r}" + "x" * 5000)

    for fn in (quiet, loud):
        with pytest.raises(ValueError, match="could not convert"):
            fn(1)
    by_model = {s.attributes[tn.ML_MODEL_NAME]: s for s in cap.spans()}
    quiet_span = by_model["behaviour-raise-quiet"]
    assert canary not in repr([dict(e.attributes) for e in quiet_span.events])
    assert canary not in (quiet_span.status.description or "")
    (event,) = by_model["behaviour-raise-loud"].events
    assert event.attributes[tn.EXCEPTION_TYPE] == "ValueError"
    # with capture on the text is exported, through the model's payload redaction
    message = event.attributes[tn.EXCEPTION_MESSAGE]
    assert message.startswith("could not convert '[REDACTED:email]'")
    assert len(message) == MAX_EXCEPTION_TEXT
    stack = event.attributes[tn.EXCEPTION_STACKTRACE]
    assert len(stack) == MAX_EXCEPTION_TEXT
    assert stack.rstrip().endswith("x")


class _AttrDict(dict[str, Any]):
    """The common attribute-dict: ``__getattr__`` raises KeyError, not AttributeError."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


class _ShapeRaises:
    @property
    def shape(self) -> tuple[int, int]:
        raise RuntimeError("lazy shape not computed")


class _ShapeInfinite:
    shape = (float("inf"), 2)


class _ShapeIterRaises:
    class _Dims:
        def __len__(self) -> int:
            return 2

        def __iter__(self) -> Any:
            raise RuntimeError("dims")

    shape = _Dims()


class _ShapeString:
    shape = "3x2"


class _ShapeNoDtype:
    shape = (3,)


# (id, input factory, ml.input.rows, ml.input.features, skips of the shape reader)
CASES: list[tuple[str, Callable[[], Any], int | None, int | None, int]] = [
    ("attrdict", lambda: _AttrDict(a=[1.0, 2.0]), None, None, 1),
    ("shape_property_raises", _ShapeRaises, None, None, 1),
    ("shape_infinite", _ShapeInfinite, None, 2, 0),
    ("shape_iter_raises", _ShapeIterRaises, None, None, 1),
    ("shape_is_a_string", _ShapeString, None, None, 0),
    ("shape_without_dtype", _ShapeNoDtype, 3, None, 0),
]


@pytest.mark.parametrize(("case", "factory", "rows", "features", "skips"), CASES,
                         ids=[c[0] for c in CASES])
# Reading an input's rows and features runs user code (a shape property, an attribute-dict's
# __getattr__ raising KeyError, a list subclass's __len__): whatever it raises or returns, the
# call keeps its span and modelotel counts a skip, not an internal error.
def test_input_whose_shape_raises_or_lies_keeps_its_span(
    case: str, factory: Callable[[], Any], rows: int | None, features: int | None, skips: int
) -> None:
    x = factory()

    @modelotel.instrument(model=f"shape-{case}")
    def predict(a: Any) -> Any:
        return 1.0

    with capture() as cap:
        assert predict(x) == 1.0
        (span,) = cap.spans()
    assert span.name == f"predict shape-{case}"
    assert span.attributes is not None
    assert span.attributes.get(A.ML_INPUT_ROWS) == rows
    assert span.attributes.get(A.ML_INPUT_FEATURES) == features
    assert _safety.health.skipped.get(A.REASON_INPUT_SHAPE, 0) == skips
    assert not _safety.health.errors  # none of it is modelotel's own error


def test_list_whose_len_raises_keeps_span_and_metrics(
    expect_internal_errors: list[tuple[str, BaseException]],
) -> None:
    class _LenRaises(list[Any]):
        def __len__(self) -> int:
            raise ZeroDivisionError("len")

    x = _LenRaises([[1.0, 2.0]])

    @modelotel.instrument(model="shape-len")
    def predict(a: Any) -> float:
        return 0.5

    with capture() as cap:
        assert predict(x) == 0.5
        (span,) = cap.spans()
        calls = cap.metric(A.METRIC_PREDICTION_CALLS, **{A.ML_MODEL_NAME: "shape-len"})
    assert calls.value == 1
    assert span.attributes is not None
    assert A.ML_INPUT_ROWS not in span.attributes
    assert _safety.health.skipped[A.REASON_INPUT_SHAPE] == 1
    # the statistics' extraction of the same object reports the failure as its own error
    assert {c for c, _ in expect_internal_errors} <= {"StatsPart.end"}


def test_observe_with_a_shape_that_raises_keeps_serving_metrics() -> None:
    """``observe`` reads the shape when the call ends: a failure there skips no metric."""
    with capture() as cap:
        with modelotel.observe("shape-observe") as call:
            call.record_inputs(_ShapeRaises())
            call.record_outputs(np.array([1.0]))
        calls = cap.metric(A.METRIC_PREDICTION_CALLS, **{A.ML_MODEL_NAME: "shape-observe"})
        (span,) = cap.spans()
    assert calls.value == 1
    assert span.attributes is not None
    assert span.attributes[A.ML_MODEL_NAME] == "shape-observe"
    assert _safety.health.skipped[A.REASON_INPUT_SHAPE] == 1
    assert _safety.health.skipped[R.SKIP_UNSUPPORTED] == 1  # the statistics skip it too
