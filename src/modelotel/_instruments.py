"""Every OpenTelemetry instrument modelotel reports through, created in one place.

Example:
    >>> from modelotel import _instruments
    >>> inst = _instruments.ensure()          # on the meter provider modelotel uses now
    >>> inst is _instruments.ensure()         # once per provider
    True

:func:`ensure` makes one :class:`Instruments` per meter provider (through
:meth:`modelotel._runtime.Runtime.per_meter_provider`): the SDK keeps the first
registration of a name on a meter and drops later callbacks, so instruments are never
made twice on a provider, only on a new one. Whoever changes providers calls it
(``configure()``, ``testing.capture()``), and so does a monitor at its first call of a new
generation.

Most instruments are *observable*: their callbacks run on the metric reader's thread at
each collection and read the in-process state of every registered model (the serving
aggregations of :mod:`modelotel._serving`, the statistics' running totals and closed
windows) and the health counters of :mod:`modelotel._safety`. A callback reports only
while its provider is the one modelotel uses now (an old provider may still be collected
after ``capture()`` or ``configure()``). The outcome metrics are synchronous instruments,
recorded by :func:`modelotel.record_outcome` when a label arrives.

Making instruments takes the SDK's measurement-consumer lock, which a collection holds
while it runs the callbacks. When :func:`ensure` is called during a collection (an
instrumented predict called from a user's own metric callback, the first call of a
generation), waiting for that lock would hang forever on the collecting thread: the set is
then made on a helper thread once the collection has ended, and :func:`ensure` returns
None meanwhile (that call's metrics are still aggregated in process and reported later).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import set_span_in_context

from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._runtime import runtime
from modelotel._safety import guard, health, record_error
from modelotel._serving import DURATION_BUCKETS, Serving, replay_values

#: The context the duration replay records in: no span, so no exemplar but the ones it
#: means to set (not empty: the SDK reads an empty context, which is falsy, as "current").
_NO_SPAN = Context({"modelotel.replay": True})


class ObservedModel(Protocol):
    """What the callbacks read of a registered model (:class:`modelotel._monitor.ModelMonitor`)."""

    serving: Serving

    def info_attributes(self) -> dict[str, Any]:
        """Attributes of ``ml.model.info``."""


class OutcomeTotals(Protocol):
    """What the accuracy gauge reads (:class:`modelotel.outcomes.OutcomeBook`)."""

    def accuracy(self) -> list[tuple[float, dict[str, Any]]]:
        """``(correct / count, attributes)`` per classification model version."""


#: Name of the runtime store that holds the outcome book (:mod:`modelotel.outcomes`).
OUTCOMES = "outcomes"


def _models() -> list[ObservedModel]:
    return list(runtime.models.values())


class Instruments:
    """Every instrument of modelotel on one meter provider (see the module docstring).

    Attributes:
        key: the meter provider key (:meth:`~modelotel._runtime.Runtime.meter_provider_key`).
        duration: ``ml.prediction.duration``, recorded only by the replay at collection.
        outcome_count, outcome_correct, outcome_class, outcome_abs_error, outcome_unmatched:
            the synchronous ``ml.outcome.*`` instruments.
    """

    def __init__(self, meter: Any, key: Any) -> None:
        self.key = key
        # --- serving
        self.duration = meter.create_histogram(
            A.METRIC_PREDICTION_DURATION,
            unit="s",
            description="Duration of predict calls.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        # The SDK runs every callback of a collection before it collects the synchronous
        # storages, so replaying the durations in a callback lands in the same collection.
        meter.create_observable_counter(
            A.METRIC_PREDICTION_CALLS,
            callbacks=[self._observe_calls],
            unit="{call}",
            description="Predict calls.",
        )
        meter.create_observable_counter(
            A.METRIC_PREDICTION_ROWS,
            callbacks=[self._observe_rows],
            unit="{row}",
            description="Input rows predicted on.",
        )
        meter.create_observable_counter(
            A.METRIC_PREDICTION_ERRORS,
            callbacks=[self._observe_errors],
            unit="{call}",
            description="Predict calls that raised an Exception, by error.type.",
        )
        meter.create_observable_gauge(
            A.METRIC_MODEL_INFO,
            callbacks=[self._observe_info],
            # an annotation, not "1": Prometheus would name a unit-1 gauge ml_model_info_ratio
            unit="{info}",
            description="Always 1; carries the model's owner, task, framework, baseline hash.",
        )
        meter.create_observable_counter(
            A.METRIC_TELEMETRY_OVERHEAD,
            callbacks=[self._observe_overhead],
            unit="s",
            description="Time the calling threads spent in modelotel around predict calls.",
        )
        # --- health of modelotel itself
        meter.create_observable_counter(
            A.METRIC_TELEMETRY_ERRORS,
            callbacks=[self._health(health.errors, A.ML_TELEMETRY_COMPONENT)],
            unit="{error}",
            description="Internal errors of modelotel, swallowed and counted.",
        )
        meter.create_observable_counter(
            A.METRIC_TELEMETRY_DROPPED,
            callbacks=[self._health(health.dropped, A.ML_TELEMETRY_REASON)],
            unit="{item}",
            description="Telemetry dropped on purpose (queue full, budget, cap), by reason.",
        )
        meter.create_observable_counter(
            A.METRIC_TELEMETRY_SKIPPED,
            callbacks=[self._health(health.skipped, A.ML_TELEMETRY_REASON)],
            unit="{item}",
            description="Input that statistics skipped (ragged, unsupported), by reason.",
        )
        # --- outcomes (labels that arrive later)
        self.outcome_count = meter.create_counter(
            A.METRIC_OUTCOME_COUNT,
            unit="{outcome}",
            description="Outcomes matched to a prediction.",
        )
        self.outcome_correct = meter.create_counter(
            A.METRIC_OUTCOME_CORRECT,
            unit="{outcome}",
            description="Classification outcomes equal to the prediction.",
        )
        self.outcome_class = meter.create_counter(
            A.METRIC_OUTCOME_CLASS,
            unit="{outcome}",
            description="Classification outcomes per actual class and result.",
        )
        self.outcome_abs_error = meter.create_histogram(
            A.METRIC_OUTCOME_ABSOLUTE_ERROR,
            description="Regression outcomes: |predicted - actual|.",
        )
        self.outcome_unmatched = meter.create_counter(
            A.METRIC_OUTCOME_UNMATCHED,
            unit="{outcome}",
            description="Outcomes whose prediction was not (or no longer) in the cache.",
        )
        meter.create_observable_gauge(
            A.METRIC_OUTCOME_ACCURACY,
            callbacks=[self._observe_accuracy],
            unit="1",
            description="Classification accuracy since the process started: correct / count.",
        )

    def is_current(self) -> bool:
        """Whether these instruments belong to the meter provider modelotel uses now."""
        return runtime.meter_provider_key() is self.key

    # ---------------------------------------------------------------------- callbacks
    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            if not self.is_current():
                return []
            servings = [m.serving for m in _models()]
            record = self.duration.record
            for serving in servings:
                for attrs, agg in serving.drain():
                    for value, times, span in replay_values(agg):
                        if span is not None:  # the bucket's exemplar: its trace context
                            record(value, attrs, context=set_span_in_context(span))
                            continue
                        for _ in range(times):
                            # an explicit context without a span: no exemplar from whatever
                            # span is current where the collection runs
                            record(value, attrs, context=_NO_SPAN)
            return [Observation(s.calls, s.attributes) for s in servings if s.calls]
        return []

    def _observe_rows(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            if not self.is_current():
                return []
            return [Observation(s.rows, s.attributes)
                    for s in (m.serving for m in _models()) if s.calls]
        return []

    def _observe_errors(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            if not self.is_current():
                return []
            return [Observation(n, attrs)
                    for m in _models() for attrs, n in m.serving.error_counts()]
        return []

    def _observe_overhead(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            if not self.is_current():
                return []
            return [Observation(s.overhead_ns / 1e9, s.attributes)
                    for s in (m.serving for m in _models()) if s.calls]
        return []

    def _observe_info(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            if not self.is_current():
                return []
            return [Observation(1, m.info_attributes()) for m in _models()]
        return []

    def _health(self, counts: dict[str, int], key: str) -> Callable[[CallbackOptions], Any]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with guard("metrics.collect"):
                if not self.is_current():
                    return []
                return [Observation(n, {key: name}) for name, n in list(counts.items())]
            return []

        return observe

    def _observe_accuracy(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("outcomes.collect"):
            if not self.is_current():
                return []
            book: OutcomeTotals | None = runtime.existing_store(OUTCOMES)
            if book is None:  # no outcome recorded in this process yet
                return []
            return [Observation(v, attrs) for v, attrs in book.accuracy()]
        return []


_SET = "modelotel.instruments"
_waiting: weakref.WeakSet[Any] = weakref.WeakSet()  # providers whose set a helper makes


def _collecting(meter: Any) -> bool:
    """Whether a metric collection of ``meter``'s SDK provider is running right now.

    The SDK registers an instrument under the lock that a collection holds while it runs
    the callbacks. The lock is the SDK's private measurement-consumer lock; without it
    (another SDK, the API's proxy) this says False and instruments are made directly.
    """
    lock = getattr(getattr(meter, "_measurement_consumer", None), "_lock", None)
    if lock is None or not hasattr(lock, "acquire"):
        return False
    if not lock.acquire(blocking=False):
        return True
    lock.release()
    return False


class _Deferred:
    """Stands in for a set being made by a helper thread (not usable yet)."""

    ready: Instruments | None = None


def _make(meter: Any, key: Any) -> Instruments | _Deferred:
    if not _collecting(meter):
        return Instruments(meter, key)
    deferred = _Deferred()

    def run() -> None:
        try:  # waits for the collection to end, then registers
            deferred.ready = Instruments(meter, key)
        except Exception as exc:  # noqa: BLE001 - instruments are telemetry, never fatal
            record_error("metrics.instruments", exc)

    threading.Thread(target=run, name="modelotel-instruments", daemon=True).start()
    return deferred


def ensure() -> Instruments | None:
    """The instruments on the meter provider modelotel uses now (made once per provider).

    When modelotel follows the global provider they are made once, on the API's proxy if no
    SDK is installed yet (the proxy forwards them to the real provider set later). Returns
    None while they are being made on a helper thread (see the module docstring), or if
    making them failed (counted in ``ml.telemetry.errors``).
    """
    try:
        made = runtime.per_meter_provider(_SET, _make)
    except Exception as exc:  # noqa: BLE001
        record_error("metrics.instruments", exc)
        return None
    if isinstance(made, _Deferred):
        return made.ready
    return made
