"""The OTel instruments of the statistics: one set per meter, reading every model's part.

Example:
    >>> from modelotel import _stats_instruments
    >>> _stats_instruments.COUNTERS[0][:3]
    ('ml.feature.count', 'ml.output.count', 'Values seen (missing included).')

Observable instruments only: at each metric collection the SDK runs their callbacks, which
read the statistics parts registered here (:func:`register`) through the small interface
:class:`Collected`. The first callback of a collection to reach a part makes it close its
window (:meth:`Collected.begin_collection`); every callback then reads that part's points.

The instruments are created once per meter, never while a collection of that meter runs:
the SDK registers an instrument under the lock a collection holds while it runs the
callbacks, so registering from inside one (an instrumented predict called from a metric
callback, e.g. a canary gauge) would wait forever. Such a registration goes to a helper
thread (:func:`make_current`).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from opentelemetry.metrics import CallbackOptions, Observation

from modelotel import _state
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._safety import guard, record_error

Points = Sequence[tuple[float, Mapping[str, Any]]]


class Collected(Protocol):
    """What the instruments read from one model's statistics."""

    #: the provider generation the part follows (only the current one's parts report)
    generation: int

    def begin_collection(self, cb: int) -> None:
        """Callback ``cb`` of a collection is about to read; a callback that already read
        the current window means a new collection began: close the window first."""

    def points(self, metric: str) -> Points:
        """``(value, attributes)`` of ``metric`` from the last closed window and totals."""

    def violation_points(self) -> Points:
        """``(count, attributes)`` of ``ml.check.violations`` (running totals)."""


#: counters fed from the running totals: (inputs' metric, outputs' metric, description)
COUNTERS = (
    (A.METRIC_FEATURE_COUNT, A.METRIC_OUTPUT_COUNT, "Values seen (missing included)."),
    (A.METRIC_FEATURE_MISSING, A.METRIC_OUTPUT_MISSING,
     "Missing values by ml.missing.kind (null, nan, inf)."),
    (A.METRIC_FEATURE_BIN, A.METRIC_OUTPUT_BIN,
     "Values per baseline bin (below/above range; categories, other, unseen)."),
)
#: gauges of the last closed window
GAUGES = (
    (A.METRIC_FEATURE_MEAN, "Mean over the last window."),
    (A.METRIC_FEATURE_STDDEV, "Standard deviation over the last window."),
    (A.METRIC_FEATURE_MIN, "Minimum over the last window."),
    (A.METRIC_FEATURE_MAX, "Maximum over the last window."),
    (A.METRIC_OUTPUT_MEAN, "Mean output over the last window."),
    (A.METRIC_OUTPUT_STDDEV, "Standard deviation of outputs over the last window."),
    (A.METRIC_OUTPUT_MIN, "Minimum output over the last window."),
    (A.METRIC_OUTPUT_MAX, "Maximum output over the last window."),
)

# ---- the parts -----------------------------------------------------------------------

_registry: weakref.WeakSet[Collected] = weakref.WeakSet()
_registry_lock = threading.Lock()


def register(part: Collected) -> None:
    """Have the instruments read ``part`` (held weakly: it lives as long as its model)."""
    with _registry_lock:
        _registry.add(part)


def _parts_of(gen: int) -> list[Collected]:
    with _registry_lock:
        return [p for p in _registry if p.generation == gen]


# ---- one set of instruments per meter ------------------------------------------------


class _StatsInstruments:
    """The stats instruments of one meter (one set for all models).

    Keyed by meter, not by provider generation: after a fork the generation moves but the
    MeterProvider (and its meter) stay, and the SDK would ignore a second registration of
    the same instrument names. Only the set of the current meter reports; callbacks read
    the parts of the current generation.
    """

    def __init__(self, meter: Any) -> None:
        self._ids = itertools.count()
        # The SDK runs the callbacks of one collection in registration order: the first
        # one (ml.feature.count) closes the windows and the others read that snapshot.
        # Should a View drop it, the first callback that finds it already read the current
        # snapshot knows a new collection began and closes the window itself.
        for feat_name, out_name, desc in COUNTERS:
            meter.create_observable_counter(
                feat_name, callbacks=[self._callback(feat_name)], unit="{value}",
                description=desc,
            )
            meter.create_observable_counter(
                out_name, callbacks=[self._callback(out_name)], unit="{value}",
                description=desc.replace("Values", "Outputs"),
            )
        for name, desc in GAUGES:
            meter.create_observable_gauge(name, callbacks=[self._callback(name)],
                                          description=desc)
        meter.create_observable_gauge(
            # A drift score (PSI, JS distance, KS statistic, ...) is not a ratio: an annotation,
            # not "1", which Prometheus would translate into ml_feature_drift_ratio.
            A.METRIC_FEATURE_DRIFT, callbacks=[self._callback(A.METRIC_FEATURE_DRIFT)],
            unit="{score}",
            description="Drift of the last window against the baseline, by ml.drift.method.",
        )
        meter.create_observable_gauge(
            A.METRIC_OUTPUT_DRIFT, callbacks=[self._callback(A.METRIC_OUTPUT_DRIFT)],
            unit="{score}",
            description="Drift of the outputs of the last window against the baseline.",
        )
        meter.create_observable_counter(
            A.METRIC_CHECK_VIOLATIONS, callbacks=[self._violations], unit="{violation}",
            description="Silent-failure check violations, by ml.check and ml.feature/ml.output.",
        )

    def _observe(self, cb: int, points: Callable[[Collected], Points]) -> list[Observation]:
        """What one callback reports: ``points`` of every part, if this set is current."""
        out: list[Observation] = []
        with guard("stats.collect"):
            if _current is not self:
                return out
            parts = _parts_of(_state.generation())
            for part in parts:
                part.begin_collection(cb)
            for part in parts:
                out.extend(Observation(v, a) for v, a in points(part))
        return out

    def _callback(self, metric: str) -> Callable[[CallbackOptions], list[Observation]]:
        cb = next(self._ids)

        def points(part: Collected) -> Points:
            return part.points(metric)

        return lambda options: self._observe(cb, points)

    def _violations(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(-1, _violation_points)


def _violation_points(part: Collected) -> Points:
    return part.violation_points()


_instruments_lock = threading.Lock()
_by_meter: weakref.WeakKeyDictionary[Any, _StatsInstruments] = weakref.WeakKeyDictionary()
_current: _StatsInstruments | None = None
_current_meter: Any = None

_waiting: weakref.WeakSet[Any] = weakref.WeakSet()  # meters registered by a helper thread
_wanted: Any = None  # the meter of the latest make_current call


def _collecting(meter: Any) -> bool:
    """Whether a metric collection of ``meter``'s SDK provider is running right now.

    The SDK registers an instrument under the lock that a collection holds while it runs
    the callbacks: registering during a collection waits for it, and forever when the
    collection runs on this very thread (an instrumented predict called from a metric
    callback, e.g. a canary gauge). The lock is the SDK's private measurement-consumer
    lock; without it (another SDK, the API's proxy) this says False, as before.
    """
    lock = getattr(getattr(meter, "_measurement_consumer", None), "_lock", None)
    if lock is None or not hasattr(lock, "acquire"):
        return False
    if not lock.acquire(blocking=False):
        return True
    lock.release()
    return False


def _register_later(meter: Any) -> None:
    """Create the set of ``meter`` on a helper thread, once the collection has ended."""

    def run() -> None:
        global _current, _current_meter
        try:
            inst = _StatsInstruments(meter)  # waits for the collection, not holding our lock
            with _instruments_lock:
                inst = _by_meter.setdefault(meter, inst)
                if _wanted is meter:  # no newer provider asked meanwhile: make it current
                    _current = inst
                    _current_meter = meter
        except Exception as exc:  # noqa: BLE001 - instruments are telemetry, never fatal
            record_error("stats.instruments", exc)
        finally:
            _waiting.discard(meter)

    _waiting.add(meter)
    threading.Thread(target=run, name="modelotel-stats-instruments", daemon=True).start()


def make_current(meter: Any) -> None:
    """Make the instrument set of ``meter`` current (created once per meter, never waiting
    on a metric collection: see :func:`_collecting`)."""
    global _current, _current_meter, _wanted
    if meter is _current_meter and _current is not None:
        return
    with _instruments_lock:
        _wanted = meter
        try:
            inst = _by_meter.get(meter)
            if inst is None:
                if meter in _waiting:
                    return
                if _collecting(meter):
                    _register_later(meter)
                    return
                inst = _StatsInstruments(meter)
                _by_meter[meter] = inst
        except Exception as exc:  # noqa: BLE001 - instruments are telemetry, never fatal
            record_error("stats.instruments", exc)
            return
        _current = inst
        _current_meter = meter


__all__ = ["COUNTERS", "GAUGES", "Collected", "Points", "make_current", "register"]
