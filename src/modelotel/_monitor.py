"""Per-model state: one :class:`ModelMonitor` per (model, version).

Example:
    >>> from modelotel._monitor import get_monitor
    >>> from modelotel.config import model_config
    >>> mon = get_monitor(model_config(model="churn", version="3"))
    >>> mon.span_name
    'predict churn'

A monitor holds what every call of one model shares: the frozen config, prebuilt span and
metric attribute dicts, the tracer / meter / logger of the current provider generation,
the finish hooks of the statistics and payload parts, and the in-process serving
aggregations.

Why serving metrics are aggregated in process: ``Histogram.record`` with attributes costs
about 5-7 µs per call in the OTel Python SDK (attribute copy and hashing, exemplar
sampling inside a recording span), a third of a bare span. So a call only adds its
duration to a preallocated bucket array of its monitor (``bisect`` on fixed bounds plus a
few integer updates under a lock, ~0.3 µs). When a metric reader collects, the callback
of an observable instrument replays the aggregation into the real OTel histogram
``ml.prediction.duration`` (on the reader's thread, never on the calling one), so the
exported metric is a genuine explicit-bucket histogram whose bucket counts, count, sum,
min and max equal those of the individual durations. Counters (``ml.prediction.rows``,
``ml.prediction.calls``, ``ml.prediction.errors``) are observable counters reading the
monitor's running totals. What is lost: exemplars on the duration histogram.
"""

from __future__ import annotations

import math
import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import set_span_in_context

from modelotel import _state
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._safety import guard, health, record_error
from modelotel._version import __version__
from modelotel.config import ModelConfig

if TYPE_CHECKING:
    from modelotel._call import Call

#: Explicit bucket bounds (seconds) of ``ml.prediction.duration``: 100 µs to 60 s, dense
#: where model latencies live (1 ms - 1 s). Passed to the SDK as the advisory bounds and
#: used by the in-process aggregation, so both agree exactly.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

#: Most distinct ``error.type`` values kept per model; further ones are folded into "_OTHER".
MAX_ERROR_TYPES = 32
OTHER_ERROR_TYPE = "_OTHER"

_NBUCKETS = len(DURATION_BUCKETS) + 1


#: The context the replay records in: no span, so no exemplar but the ones it means to set
#: (not empty: the SDK reads an empty context, which is falsy, as "use the current one").
_NO_SPAN = Context({"modelotel.replay": True})


class _DurationAgg:
    """Bucket counts, per-bucket sums, min and max of durations since the last drain."""

    __slots__ = ("counts", "ex_span", "ex_val", "n", "sums", "vmax", "vmin")

    def __init__(self) -> None:
        self.counts = [0] * _NBUCKETS
        self.sums = [0.0] * _NBUCKETS
        self.n = 0
        self.vmin = math.inf
        self.vmax = -math.inf
        # per bucket, the last traced call's span and duration: the bucket's exemplar
        self.ex_span: list[Any] = [None] * _NBUCKETS
        self.ex_val = [0.0] * _NBUCKETS


def replay_values(agg: _DurationAgg) -> Iterator[tuple[float, int, Any]]:
    """Values to record, with repeat counts and a span or None, that reproduce ``agg``
    exactly in a histogram.

    Each bucket is replayed as its mean (a mean of values inside a bucket lies inside it),
    except that the overall min and max are replayed as themselves so the histogram's
    min/max are exact, and the bucket's last traced call is replayed as itself with its
    span (the SDK keeps it as the bucket's exemplar: a link from the latency histogram to
    a trace). Bucket counts and count are exact; the sum equals up to rounding.
    """
    if agg.n == 0:
        return
    first = next(i for i in range(_NBUCKETS) if agg.counts[i])
    last = max(i for i in range(_NBUCKETS) if agg.counts[i])
    for i in range(first, last + 1):
        c = agg.counts[i]
        if not c:
            continue
        specials: list[list[Any]] = []  # [value, span or None], each one call
        if i == first:
            specials.append([agg.vmin, None])
        if i == last and c > len(specials):
            specials.append([agg.vmax, None])
        span = agg.ex_span[i]
        if span is not None:
            v = agg.ex_val[i]
            for item in specials:
                if item[0] == v and item[1] is None:  # the min or max call, or its twin
                    item[1] = span
                    break
            else:
                if c > len(specials):
                    specials.append([v, span])
        s = agg.sums[i]
        for v, sp in specials:
            yield v, 1, sp
            s -= v
        c -= len(specials)
        if c:
            mean = s / c
            lo = DURATION_BUCKETS[i - 1] if i > 0 else 0.0
            hi = DURATION_BUCKETS[i] if i < len(DURATION_BUCKETS) else math.inf
            # rounding may push the mean onto the far side of a bound: clamp into (lo, hi]
            if mean <= lo:
                mean = math.nextafter(lo, math.inf)
            elif mean > hi:
                mean = hi
            yield max(mean, 0.0), c, None


class ModelMonitor:
    """State shared by every call of one (model, version).

    Attributes:
        config: the frozen :class:`~modelotel.config.ModelConfig`.
        finish_hooks: called with the :class:`~modelotel._call.Call` at finish, each in
            its own guard (statistics first, payload second).
        tracer, meter, logger: from the providers of the current generation.
        framework: ``ml.model.framework`` (set by ``wrap()``: sklearn, xgboost, ...).
        baseline_hash: ``ml.baseline.hash`` (set by the statistics part when it loads one).
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.span_name = A.SPAN_NAME_TEMPLATE.format(model=config.model)
        self.span_attributes: dict[str, Any] = {
            A.ML_MODEL_NAME: config.model,
            A.ML_MODEL_VERSION: config.version,
        }
        self.metric_attributes: dict[str, Any] = {
            A.ML_MODEL_NAME: config.model,
            A.ML_MODEL_VERSION: config.version,
        }
        self.finish_hooks: list[Callable[[Call], None]] = []
        self.framework = ""
        self.baseline_hash = ""
        self.tracer: Any = None
        self.meter: Any = None
        self.logger: Any = None
        self._lock = threading.Lock()
        self._gen = -1
        self._ok = _DurationAgg()
        self._err: dict[str, _DurationAgg] = {}
        self._err_attrs: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.rows = 0
        self.errors: dict[str, int] = {}
        #: nanoseconds the calling threads spent in modelotel around this model's calls
        self.overhead_ns = 0
        with guard("monitor.build_hooks"):
            self.build_hooks()

    # ------------------------------------------------------------------ hooks
    def build_hooks(self) -> None:
        """Fill :attr:`finish_hooks`. Runs once, when the monitor is built."""
        # --- stats (issue 4) ---
        from modelotel._stats_monitor import attach_stats

        with guard("stats.setup"):  # its own guard: a failure here must not cost payloads
            attach_stats(self)
        # --- payload (issue 5) ---
        from modelotel._payload.emit import make_payload_hook
        from modelotel.outcomes import cache_for

        cfg = self.config
        payload_hook = make_payload_hook(
            cfg, outcome_cache=cache_for(cfg.model, cfg.version, cfg.task)
        )
        if payload_hook is not None:  # None: payloads off and no outcome cache (zero cost)
            self.finish_hooks.append(payload_hook)

    # ---------------------------------------------------------------- providers
    def refresh(self) -> None:
        """Re-fetch tracer / meter / logger after the providers changed (generation moved).

        Called per call only when the generation moved (one int compare otherwise). The
        in-process aggregations are kept: they are exported by whichever provider is
        current when a reader collects (a model called before ``configure()`` keeps its
        counts). They are dropped only after a fork (the parent's, not the child's) and when
        ``testing.capture()`` starts.
        """
        with self._lock:
            gen = _state.generation()
            if gen == self._gen:
                return
            self.tracer = _state.tracer_provider().get_tracer(A.SCOPE_NAME, __version__)
            self.meter = _state.meter_provider().get_meter(A.SCOPE_NAME, __version__)
            self.logger = _state.logger_provider().get_logger(A.SCOPE_NAME, __version__)
            self._gen = gen
        ensure_instruments()

    def reset(self) -> None:
        """Forget the aggregations and totals (after a fork; when a capture starts)."""
        self._lock = threading.Lock()  # after a fork another thread may have held it
        self._ok = _DurationAgg()
        self._err = {}
        self._err_attrs = {}
        self.calls = 0
        self.rows = 0
        self.errors = {}
        self.overhead_ns = 0

    # ------------------------------------------------------------------ per call
    def record(
        self, seconds: float, rows: int, error_type: str | None, span: Any = None
    ) -> None:
        """Add one call to the in-process serving aggregations (cheap, thread-safe).

        ``span``: the call's span when it is recorded (sampled): kept as its bucket's
        exemplar until the next collection.
        """
        i = bisect_left(DURATION_BUCKETS, seconds)
        with self._lock:
            if error_type is None:
                agg = self._ok
            else:
                agg_or_none = self._err.get(error_type)
                if agg_or_none is None:
                    agg = self._new_error_type(error_type)
                else:
                    agg = agg_or_none
                    self.errors[error_type] += 1
            agg.counts[i] += 1
            agg.sums[i] += seconds
            if span is not None:
                agg.ex_span[i] = span
                agg.ex_val[i] = seconds
            agg.n += 1
            if seconds < agg.vmin:
                agg.vmin = seconds
            if seconds > agg.vmax:
                agg.vmax = seconds
            self.calls += 1
            self.rows += rows

    def _new_error_type(self, error_type: str) -> _DurationAgg:
        # called with self._lock held
        if len(self._err) >= MAX_ERROR_TYPES and error_type not in self._err:
            error_type = OTHER_ERROR_TYPE
            existing = self._err.get(error_type)
            if existing is not None:
                self.errors[error_type] += 1
                return existing
        agg = _DurationAgg()
        self._err[error_type] = agg
        self.errors[error_type] = 1
        attrs = dict(self.metric_attributes)
        attrs[A.ERROR_TYPE] = error_type
        self._err_attrs[error_type] = attrs
        return agg

    def drain(self) -> list[tuple[dict[str, Any], _DurationAgg]]:
        """Take the duration aggregations since the last drain (and start new ones)."""
        with self._lock:
            out: list[tuple[dict[str, Any], _DurationAgg]] = []
            if self._ok.n:
                out.append((self.metric_attributes, self._ok))
                self._ok = _DurationAgg()
            for et, agg in self._err.items():
                if agg.n:
                    out.append((self._err_attrs[et], agg))
                    self._err[et] = _DurationAgg()
            return out

    def info_attributes(self) -> dict[str, Any]:
        """Attributes of ``ml.model.info`` for this model."""
        attrs = dict(self.metric_attributes)
        attrs[A.ML_MODEL_OWNER] = self.config.owner
        attrs[A.ML_MODEL_RUNBOOK_URL] = self.config.runbook_url
        attrs[A.ML_MODEL_TASK] = self.config.task
        attrs[A.ML_MODEL_FRAMEWORK] = self.framework
        attrs[A.ML_BASELINE_HASH] = self.baseline_hash
        return attrs


# ---------------------------------------------------------------------- registry
_registry_lock = threading.Lock()
_monitors: dict[tuple[str, str], ModelMonitor] = {}


def get_monitor(config: ModelConfig) -> ModelMonitor:
    """The monitor of ``(config.model, config.version)``, built on first use.

    Two decorations of the same (model, version) share one monitor (their calls are the
    same model's traffic); the first one's config wins and a differing one warns once.
    """
    key = (config.model, config.version)
    mon = _monitors.get(key)
    if mon is not None:
        if mon.config != config:
            health.warn_once(
                f"config-mismatch:{key[0]}:{key[1]}",
                "modelotel: model %r version %r was instrumented twice with different "
                "options; the first instrumentation's options are used",
                config.model,
                config.version,
            )
        return mon
    with _registry_lock:
        mon = _monitors.get(key)
        if mon is None:
            mon = ModelMonitor(config)
            _monitors[key] = mon
        return mon


def monitors() -> list[ModelMonitor]:
    """Every monitor built so far (a snapshot)."""
    return list(_monitors.values())


def _clear_registry() -> None:
    with _registry_lock:
        _monitors.clear()


def reset_all() -> None:
    """Reset every monitor's aggregations (the child after a fork; ``testing.capture()``)."""
    for mon in monitors():
        mon.reset()


if hasattr(os, "register_at_fork"):  # the child must not export what the parent counted
    os.register_at_fork(after_in_child=reset_all)


# ------------------------------------------------------------------- instruments
class _Instruments:
    """The serving and health instruments on one meter provider (created once per provider).

    Callbacks report only while their provider is the one modelotel uses now (an old
    provider may still be collected after ``capture()`` or ``set_providers``).
    They report the process-wide state of every monitor: the serving aggregations are in
    process, independent of the provider that happened to be current at call time.
    """

    def __init__(self, meter: Any) -> None:
        self.key: Any = None  # the meter provider key, set right after construction
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
        meter.create_observable_counter(
            A.METRIC_TELEMETRY_ERRORS,
            callbacks=[self._observe_health_errors],
            unit="{error}",
            description="Internal errors of modelotel, swallowed and counted.",
        )
        meter.create_observable_counter(
            A.METRIC_TELEMETRY_DROPPED,
            callbacks=[self._observe_health_dropped],
            unit="{item}",
            description="Telemetry dropped on purpose (queue full, budget, cap), by reason.",
        )
        meter.create_observable_counter(
            A.METRIC_TELEMETRY_SKIPPED,
            callbacks=[self._observe_health_skipped],
            unit="{item}",
            description="Input that statistics skipped (ragged, unsupported), by reason.",
        )

    def is_current(self) -> bool:
        """Whether these instruments belong to the meter provider modelotel uses now."""
        return _state.meter_provider_key() is self.key

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            if not self.is_current():
                return []
            mons = monitors()
            record = self.duration.record
            for mon in mons:
                for attrs, agg in mon.drain():
                    for value, times, span in replay_values(agg):
                        if span is not None:  # the bucket's exemplar: its trace context
                            record(value, attrs, context=set_span_in_context(span))
                            continue
                        for _ in range(times):
                            # an explicit empty context: no exemplar from whatever span is
                            # current where the collection runs (force_flush in a request)
                            record(value, attrs, context=_NO_SPAN)
            return [Observation(mon.calls, mon.metric_attributes) for mon in mons if mon.calls]
        return []

    def _observe_rows(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            if not self.is_current():
                return []
            return [Observation(m.rows, m.metric_attributes) for m in monitors() if m.calls]
        return []

    def _observe_errors(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            if not self.is_current():
                return []
            out: list[Observation] = []
            for mon in monitors():
                with mon._lock:
                    items = [(mon._err_attrs[et], n) for et, n in mon.errors.items()]
                out.extend(Observation(n, attrs) for attrs, n in items)
            return out
        return []

    def _observe_overhead(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            if not self.is_current():
                return []
            return [Observation(m.overhead_ns / 1e9, m.metric_attributes)
                    for m in monitors() if m.calls]
        return []

    def _observe_info(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            if not self.is_current():
                return []
            return [Observation(1, m.info_attributes()) for m in monitors()]
        return []

    def _health(self, counts: dict[str, int], key: str) -> list[Observation]:
        if not self.is_current():
            return []
        return [Observation(n, {key: name}) for name, n in list(counts.items())]

    def _observe_health_errors(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            return self._health(health.errors, A.ML_TELEMETRY_COMPONENT)
        return []

    def _observe_health_dropped(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            return self._health(health.dropped, A.ML_TELEMETRY_REASON)
        return []

    def _observe_health_skipped(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("metrics.collect"):
            return self._health(health.skipped, A.ML_TELEMETRY_REASON)
        return []


def ensure_instruments() -> _Instruments | None:
    """The serving / health instruments on the current provider's meter (built once per meter).

    When modelotel follows the global provider they are built once, on the API's proxy if
    no SDK is installed yet (the proxy forwards them to the real provider set later).
    """
    try:
        inst, key = _state.per_meter_provider("modelotel.serving", _Instruments)
        inst.key = key
        return inst  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001
        record_error("metrics.instruments", exc)
        return None


# a provider change registers the instruments at once, so ml.model.info and the health
# counters are exported even before the next predict call
_state.on_generation_change(ensure_instruments)
