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

import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
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


Points = Sequence[tuple[float, Mapping[str, Any]]]


class ObservedStats(Protocol):
    """What the callbacks read of a model's statistics (``StatsPart``)."""

    #: the provider generation the statistics started over for (only the current one reports)
    generation: int

    def begin_collection(self, cb: int) -> None:
        """Callback ``cb`` of a collection is about to read; a callback that already read
        the current window means a new collection began: close the window first."""

    def points(self, metric: str) -> Points:
        """``(value, attributes)`` of ``metric`` from the last closed window and totals."""

    def violation_points(self) -> Points:
        """``(count, attributes)`` of ``ml.check.violations`` (running totals)."""


class ObservedModel(Protocol):
    """What the callbacks read of a registered model (:class:`modelotel._monitor.ModelMonitor`)."""

    serving: Serving

    @property
    def stats(self) -> ObservedStats | None:
        """The model's statistics part, or None."""

    def info_attributes(self) -> dict[str, Any]:
        """Attributes of ``ml.model.info``."""


#: the statistics' counters, fed from running totals: (inputs' metric, outputs', description)
STATS_COUNTERS = (
    (A.METRIC_FEATURE_COUNT, A.METRIC_OUTPUT_COUNT, "Values seen (missing included)."),
    (A.METRIC_FEATURE_MISSING, A.METRIC_OUTPUT_MISSING,
     "Missing values by ml.missing.kind (null, nan, inf)."),
    (A.METRIC_FEATURE_BIN, A.METRIC_OUTPUT_BIN,
     "Values per baseline bin (below/above range; categories, other, unseen)."),
)
#: the statistics' gauges of the last closed window
STATS_GAUGES = (
    (A.METRIC_FEATURE_MEAN, "Mean over the last window."),
    (A.METRIC_FEATURE_STDDEV, "Standard deviation over the last window."),
    (A.METRIC_FEATURE_MIN, "Minimum over the last window."),
    (A.METRIC_FEATURE_MAX, "Maximum over the last window."),
    (A.METRIC_OUTPUT_MEAN, "Mean output over the last window."),
    (A.METRIC_OUTPUT_STDDEV, "Standard deviation of outputs over the last window."),
    (A.METRIC_OUTPUT_MIN, "Minimum output over the last window."),
    (A.METRIC_OUTPUT_MAX, "Maximum output over the last window."),
)


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
        self._stats_ids = itertools.count()
        # --- statistics, registered first: the SDK runs the callbacks of a collection in
        # registration order, and the first of them (ml.feature.count) closes the windows
        # that the others read. Should a View drop it, the first callback that finds it
        # already read the current window knows a new collection began and closes it.
        for feature, output, desc in STATS_COUNTERS:
            meter.create_observable_counter(
                feature, callbacks=[self._stats_callback(feature)], unit="{value}",
                description=desc,
            )
            meter.create_observable_counter(
                output, callbacks=[self._stats_callback(output)], unit="{value}",
                description=desc.replace("Values", "Outputs"),
            )
        if runtime.settings.window_gauges:  # MODELOTEL_WINDOW_GAUGES=false: counters only
            self._window_gauges(meter)
        meter.create_observable_counter(
            A.METRIC_CHECK_VIOLATIONS, callbacks=[self._observe_violations],
            unit="{violation}",
            description="Silent-failure check violations, by ml.check and ml.feature/ml.output.",
        )
        # --- serving
        self.duration = meter.create_histogram(
            A.METRIC_PREDICTION_DURATION,
            unit="s",
            description="Duration of predict calls.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        # streams only (a few us per stream, recorded at its end): a plain histogram
        self.time_to_first_item = meter.create_histogram(
            A.METRIC_PREDICTION_TIME_TO_FIRST_ITEM,
            unit="s",
            description="Time from the start of a streaming prediction to its first item.",
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

    def _window_gauges(self, meter: Any) -> None:
        """The gauges of one replica's last window: dashboards read them, alerts do not (the
        fleet rules work on the additive counters), so a big fleet may leave them out."""
        for name, desc in STATS_GAUGES:
            meter.create_observable_gauge(
                name, callbacks=[self._stats_callback(name)], description=desc
            )
        meter.create_observable_gauge(
            # a drift score (PSI, JS distance, KS statistic, ...) is not a ratio: an
            # annotation, not "1", which Prometheus would turn into ml_feature_drift_ratio
            A.METRIC_FEATURE_DRIFT, callbacks=[self._stats_callback(A.METRIC_FEATURE_DRIFT)],
            unit="{score}",
            description="Drift of the last window against the baseline, by ml.drift.method.",
        )
        meter.create_observable_gauge(
            A.METRIC_OUTPUT_DRIFT, callbacks=[self._stats_callback(A.METRIC_OUTPUT_DRIFT)],
            unit="{score}",
            description="Drift of the outputs of the last window against the baseline.",
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

    def _stats_of_this_collection(self, cb: int) -> list[ObservedStats]:
        gen = runtime.generation
        parts = [p for p in (m.stats for m in _models()) if p is not None and p.generation == gen]
        for part in parts:
            part.begin_collection(cb)
        return parts

    def _stats_callback(self, metric: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        cb = next(self._stats_ids)

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with guard("stats.collect"):
                if not self.is_current():
                    return []
                return [Observation(v, a) for part in self._stats_of_this_collection(cb)
                        for v, a in part.points(metric)]
            return []

        return observe

    def _observe_violations(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("stats.collect"):
            if not self.is_current():
                return []
            return [Observation(v, a) for part in self._stats_of_this_collection(-1)
                    for v, a in part.violation_points()]
        return []

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
