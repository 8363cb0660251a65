"""Fault injection: every internal step raises or returns garbage; the user's call is unharmed.

Each fault is injected with monkeypatch; then a sync function, a coroutine, a generator and
an ``observe`` block are run, both succeeding and raising. The user's result (or exception
object) must be exactly what their code produced, and the failure must be counted in
``_safety.health.errors`` (exported as ``ml.telemetry.errors``).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer

import modelotel
from modelotel import _instrument, _instruments, _monitor, _observe, _prediction, _safety, _suppress
from modelotel import attributes as tn
from modelotel._monitor import ModelMonitor
from modelotel._serving import Serving
from modelotel.testing import capture

_counter = itertools.count()


class UserError(Exception):
    """The user's own exception."""


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected fault")


def _hook_boom(call: Any) -> None:
    raise RuntimeError("injected hook fault")


Injector = Callable[[pytest.MonkeyPatch], None]

# name -> (injector, predicate(kind, outcome) telling whether the faulty step runs)
ALWAYS: Callable[[str, str], bool] = lambda kind, outcome: True  # noqa: E731
ON_ERROR_OR_STREAM: Callable[[str, str], bool] = lambda kind, outcome: (  # noqa: E731
    outcome == "raise" or kind in ("generator", "observe")
)
ON_ERROR: Callable[[str, str], bool] = lambda kind, outcome: outcome == "raise"  # noqa: E731

FAULTS: dict[str, tuple[Injector, Callable[[str, str], bool]]] = {
    "id generation raises": (
        lambda mp: mp.setattr(_prediction, "_new_prediction_id", _boom),
        ALWAYS,
    ),
    "id generation returns garbage": (
        lambda mp: mp.setattr(_prediction, "_new_prediction_id", lambda: 12345),
        ALWAYS,
    ),
    "attribute building raises": (
        lambda mp: mp.setattr(_prediction, "_input_shape", _boom),
        ALWAYS,
    ),
    "attribute building returns garbage": (
        lambda mp: mp.setattr(_prediction, "_input_shape", lambda x: ("many", object())),
        ALWAYS,
    ),
    "span start raises": (lambda mp: mp.setattr(SdkTracer, "start_span", _boom), ALWAYS),
    "span start returns garbage": (
        lambda mp: mp.setattr(SdkTracer, "start_span", lambda *a, **k: "not a span"),
        ALWAYS,
    ),
    "span end raises": (lambda mp: mp.setattr(SdkSpan, "end", _boom), ALWAYS),
    "span set_attributes raises": (
        lambda mp: mp.setattr(SdkSpan, "set_attributes", _boom),
        ON_ERROR_OR_STREAM,
    ),
    "span add_event (exception) raises": (
        lambda mp: mp.setattr(SdkSpan, "add_event", _boom),
        ON_ERROR,
    ),
    "span is_recording raises": (lambda mp: mp.setattr(SdkSpan, "is_recording", _boom), ALWAYS),
    "context attach raises": (lambda mp: mp.setattr(_prediction, "_attach", _boom), ALWAYS),
    "context detach raises": (lambda mp: mp.setattr(_prediction, "_detach", _boom), ALWAYS),
    "metric record raises": (lambda mp: mp.setattr(Serving, "record", _boom), ALWAYS),
    "provider refresh raises": (lambda mp: mp.setattr(ModelMonitor, "refresh", _boom), ALWAYS),
    "monitor build raises": (
        lambda mp: (
            mp.setattr(_instrument, "get_monitor", _boom),
            mp.setattr(_observe, "get_monitor", _boom),
        ),
        ALWAYS,
    ),
    "suppression check raises": (
        lambda mp: (mp.setattr(_suppress, "_get_current", _boom),),
        ALWAYS,
    ),
}

KINDS = ("sync", "async", "generator", "observe")
OUTCOMES = ("return", "raise")


def _run(kind: str, outcome: str) -> tuple[Any, BaseException | None, BaseException | None]:
    """Build a fresh instrumented callable of ``kind`` and run it once.

    Returns (result, raised exception, the exception object the user's code raised).
    """
    name = f"faults-{next(_counter)}"
    err = UserError("the user's own error")
    result_obj = {"scores": [0.25, 0.75]}
    inputs = [[1.0, 2.0], [3.0, 4.0]]

    if kind == "sync":

        @modelotel.instrument(model=name)
        def predict(x: Any) -> Any:
            if outcome == "raise":
                raise err
            return result_obj

        runner: Callable[[], Any] = lambda: predict(inputs)  # noqa: E731
    elif kind == "async":

        @modelotel.instrument(model=name)
        async def apredict(x: Any) -> Any:
            await asyncio.sleep(0)
            if outcome == "raise":
                raise err
            return result_obj

        runner = lambda: asyncio.run(apredict(inputs))  # noqa: E731
    elif kind == "generator":

        @modelotel.instrument(model=name)
        def stream(x: Any) -> Iterator[Any]:
            yield result_obj
            if outcome == "raise":
                raise err
            yield result_obj

        def consume() -> Any:
            items = list(stream(inputs))
            assert all(i is result_obj for i in items)
            return items[0]

        runner = consume
    else:

        def observed() -> Any:
            with modelotel.observe(name) as call:
                call.record_inputs(inputs)
                if outcome == "raise":
                    raise err
                call.record_outputs(result_obj)
                call.set_attribute("app.k", "v")
                return result_obj

        runner = observed
    try:
        return runner(), None, err
    except BaseException as exc:
        return None, exc, err


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_never_reaches_the_user(
    fault: str,
    kind: str,
    outcome: str,
    monkeypatch: pytest.MonkeyPatch,
    expect_internal_errors: list[tuple[str, BaseException]],
) -> None:
    inject, runs = FAULTS[fault]
    with capture():
        inject(monkeypatch)
        # in a copy of the context: "context detach raises" leaves the span attached (the
        # fault), and later tests must not run inside it
        result, raised, err = contextvars.copy_context().run(_run, kind, outcome)
        monkeypatch.undo()
    if outcome == "raise":
        assert result is None
        assert raised is err  # the very object the user's code raised
        assert raised.__traceback__ is not None
    else:
        assert raised is None, repr(raised)
        assert result == {"scores": [0.25, 0.75]}
    if runs(kind, outcome):
        assert expect_internal_errors, f"{fault} was not counted"
        assert sum(_safety.health.errors.values()) >= 1
        for _component, exc in expect_internal_errors:
            assert isinstance(exc, (RuntimeError, TypeError)), repr(exc)


def test_failing_hook_is_counted_by_its_name(
    expect_internal_errors: list[tuple[str, BaseException]],
) -> None:
    @modelotel.instrument(model="faults-hook")
    def predict(x: list[int]) -> int:
        return len(x)

    with capture() as cap:
        assert predict([1, 2]) == 2  # builds the monitor
        mon = next(m for m in _monitor.monitors() if m.config.model == "faults-hook")
        ends = mon.ends
        mon.ends = (*ends, _hook_boom)
        try:
            assert predict([1, 2, 3]) == 3
        finally:
            mon.ends = ends
        # the span still ends, the metrics still count
        assert len(cap.spans()) == 2
        assert (
            cap.metric(tn.METRIC_PREDICTION_CALLS, **{tn.ML_MODEL_NAME: "faults-hook"}).value == 2
        )
        assert [c for c, _ in expect_internal_errors] == ["_hook_boom"]
        point = cap.metric(tn.METRIC_TELEMETRY_ERRORS, **{tn.ML_TELEMETRY_COMPONENT: "_hook_boom"})
        assert point.value == 1


def test_telemetry_errors_metric_names_the_component(
    monkeypatch: pytest.MonkeyPatch,
    expect_internal_errors: list[tuple[str, BaseException]],
) -> None:
    @modelotel.instrument(model="faults-metric")
    def predict(x: int) -> int:
        return x

    with capture() as cap:
        predict(0)
        monkeypatch.setattr(_prediction, "_new_prediction_id", _boom)
        for i in range(3):
            assert predict(i) == i
        monkeypatch.undo()
        point = cap.metric(
            tn.METRIC_TELEMETRY_ERRORS, **{tn.ML_TELEMETRY_COMPONENT: "call.prediction_id"}
        )
        assert point.value == 3
        # the call without an id still made a span, just without ml.prediction.id
        spans = cap.spans()
        assert len(spans) == 4
        assert [tn.ML_PREDICTION_ID in s.attributes for s in spans] == [True, False, False, False]
    assert len(expect_internal_errors) == 3


def test_collection_fault_is_counted_and_export_goes_on(
    monkeypatch: pytest.MonkeyPatch,
    expect_internal_errors: list[tuple[str, BaseException]],
) -> None:
    @modelotel.instrument(model="faults-collect")
    def predict(x: int) -> int:
        return x

    with capture() as cap:
        predict(1)
        monkeypatch.setattr(_instruments, "replay_values", _boom)
        points = cap.collect()
        monkeypatch.undo()
        names = {p.name for p in points}
        # the other instruments still export
        assert tn.METRIC_PREDICTION_ROWS in names
        assert tn.METRIC_MODEL_INFO in names
        assert [c for c, _ in expect_internal_errors] == ["metrics.collect"]


def test_garbage_duration_from_time_is_counted(
    monkeypatch: pytest.MonkeyPatch,
    expect_internal_errors: list[tuple[str, BaseException]],
) -> None:
    @modelotel.instrument(model="faults-time")
    def predict(x: int) -> int:
        return x

    with capture() as cap:
        predict(1)
        monkeypatch.setattr(_prediction, "_perf_counter_ns", lambda: "not a number")
        assert predict(2) == 2
        monkeypatch.undo()
        assert len(cap.spans()) == 2
    # the duration and the overhead both read the clock: each counts its failure
    assert [c for c, _ in expect_internal_errors] == ["call.metrics", "call.overhead"]
