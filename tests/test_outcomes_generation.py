"""Outcome metrics across provider generations: configure() attaching to the providers that
are already there, and a fork, bump the generation without changing the MeterProvider; the
instruments must be created once per provider and the counts must go on."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import modelotel
from modelotel import attributes as tn
from modelotel import outcomes
from modelotel._runtime import runtime
from modelotel.testing import Captured, capture

ATTRS = {tn.ML_MODEL_NAME: "gen-clf", tn.ML_MODEL_VERSION: "1"}


def _record(n: int, correct: int, start: int) -> None:
    for i in range(n):
        pid = f"{start + i:016x}"
        modelotel.record_outcome(
            pid, "a", model="gen-clf", version="1", predicted="a" if i < correct else "b"
        )


def _points(cap: Captured, name: str) -> list[float]:
    return [
        p.value for p in cap.collect()
        if p.name == name and p.attributes.get(tn.ML_MODEL_NAME) == "gen-clf"
    ]


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    runtime.reset()


def test_outcome_metrics_survive_generation_bumps_on_the_same_provider() -> None:
    with capture() as cap:
        _record(4, 3, 0)
        runtime.bump_generation()  # what configure() does when it attaches to the providers
        _record(6, 2, 100)
        runtime.bump_generation()
        assert cap.metric(tn.METRIC_OUTCOME_COUNT, **ATTRS).value == 10
        assert cap.metric(tn.METRIC_OUTCOME_CORRECT, **ATTRS).value == 5
        # one accuracy series, not one per generation
        assert _points(cap, tn.METRIC_OUTCOME_ACCURACY) == [pytest.approx(0.5)]
        logs = [r for r in cap.logs() if r.log_record.event_name == tn.EVENT_PREDICTION_OUTCOME]
        assert len(logs) == 10  # the outcome records follow the generation too


def test_an_old_provider_stops_reporting_outcomes() -> None:
    with capture() as outer:
        _record(2, 2, 0)
        with capture() as inner:
            _record(2, 0, 10)
            # the outer provider is not modelotel's now: its accuracy gauge stays silent
            assert _points(outer, tn.METRIC_OUTCOME_ACCURACY) == []
            assert inner.metric(tn.METRIC_OUTCOME_COUNT, **ATTRS).value == 2
            assert _points(inner, tn.METRIC_OUTCOME_ACCURACY) == [pytest.approx(0.5)]
        _record(4, 4, 20)
        # back on the outer provider: its counters saw only its own outcomes
        assert outer.metric(tn.METRIC_OUTCOME_COUNT, **ATTRS).value == 6
        assert _points(outer, tn.METRIC_OUTCOME_ACCURACY) == [pytest.approx(0.75)]


class _WatchedMeter:
    """A real meter that notes, at every instrument creation, whether the outcome book's lock
    was held."""

    def __init__(self, meter: Any, held: list[bool]) -> None:
        self._meter = meter
        self._held = held

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._meter, name)
        if not name.startswith("create_"):
            return attr

        def create(instrument: str, *args: Any, **kwargs: Any) -> Any:
            if instrument.startswith("ml.outcome."):
                self._held.append(outcomes.book().lock.locked())
            return attr(instrument, *args, **kwargs)

        return create


class _WatchedProvider:
    def __init__(self, provider: MeterProvider, held: list[bool]) -> None:
        self._provider = provider
        self._held = held

    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        return _WatchedMeter(self._provider.get_meter(*args, **kwargs), self._held)


def test_instruments_are_never_created_under_the_lock_the_accuracy_callback_takes() -> None:
    # A collection holds the SDK's consumer lock while the accuracy callback takes the
    # outcome book's lock; creating an instrument takes that consumer lock. Creating
    # instruments under the book's lock would be a lock-order inversion (a deadlock with a
    # collection).
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    held: list[bool] = []
    saved = runtime.providers()
    runtime.set_providers(None, _WatchedProvider(provider, held), None)  # type: ignore[arg-type]
    try:
        _record(3, 2, 0)
        runtime.bump_generation()
        _record(1, 1, 10)
        data = reader.get_metrics_data()
    finally:
        runtime.set_providers(*saved)
    assert held == [False] * 6  # six instruments, created once, never under the lock
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {tn.METRIC_OUTCOME_COUNT, tn.METRIC_OUTCOME_ACCURACY} <= names
    provider.shutdown()
