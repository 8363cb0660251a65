"""Helpers to test code instrumented with modelotel: capture its spans, metrics and logs.

Example:
    >>> import modelotel
    >>> from modelotel.testing import capture
    >>> @modelotel.instrument(model="doc-model")
    ... def predict(X):
    ...     return [0 for _ in X]
    >>> with capture() as cap:
    ...     _ = predict([[1.0], [2.0]])
    >>> [s.name for s in cap.spans()]
    ['predict doc-model']
    >>> cap.metric("ml.prediction.rows", **{"ml.model.name": "doc-model"}).value
    2

``capture()`` installs in-memory OpenTelemetry SDK providers for modelotel only (through
``modelotel._runtime``; the application's global providers are left alone) and restores the
previous ones on exit; the in-process serving aggregations and the health counters
(``ml.telemetry.skipped`` / ``dropped`` / ``errors``) start from zero when it begins.
A window of statistics closes at a collection that finds new values: looking twice
(``collect()``, ``metric()``) without a call in between sees the same window, so the drift
of every feature can be read one ``metric()`` at a time.
Spans are exported synchronously, so :meth:`Captured.spans` is
complete as soon as a call returns; payload records are finished by modelotel's payload
worker, and :meth:`Captured.logs`, :meth:`Captured.collect` and :meth:`Captured.clear` wait
for the records of the calls that already returned first (so do the end of the block and
:func:`drain`); metrics are collected on demand (:meth:`Captured.collect`) and once more
when the block ends, so both can be inspected after it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from modelotel import _instruments
from modelotel._payload.worker import drain_payloads
from modelotel._runtime import runtime
from modelotel._safety import health

__all__ = ["Captured", "MetricPoint", "capture", "drain"]

#: Seconds a reader waits at most for the payload worker (records of calls already made).
DRAIN_TIMEOUT = 30.0


def drain(timeout: float = DRAIN_TIMEOUT) -> bool:
    """Wait until the payload records of the calls made so far are emitted (or dropped).

    Payload records are built on a background worker after the call returns; read the
    health counters (``ml.telemetry.dropped``) or your own log exporter after this.
    """
    return drain_payloads(timeout)


@dataclass(frozen=True)
class MetricPoint:
    """One data point of one metric, flattened.

    Attributes:
        name: metric name (``ml.prediction.duration``).
        attributes: the data point's attributes.
        value: the value for counters and gauges; the sum for histograms.
        unit: the metric's unit.
        count: histograms only: number of observations.
        bucket_counts: histograms only: counts per bucket.
        explicit_bounds: histograms only: the bucket bounds.
        min, max: histograms only.
        data: the SDK's data point object, for anything else.
    """

    name: str
    attributes: dict[str, Any]
    value: float | int
    unit: str = ""
    count: int | None = None
    bucket_counts: tuple[int, ...] | None = None
    explicit_bounds: tuple[float, ...] | None = None
    min: float | None = None
    max: float | None = None
    data: Any = field(default=None, repr=False, compare=False)


def _flatten(data: MetricsData | None) -> list[MetricPoint]:
    points: list[MetricPoint] = []
    if data is None:
        return points
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for dp in metric.data.data_points:
                    if isinstance(dp, HistogramDataPoint):
                        points.append(
                            MetricPoint(
                                name=metric.name,
                                attributes=dict(dp.attributes or {}),
                                value=dp.sum,
                                unit=metric.unit or "",
                                count=dp.count,
                                bucket_counts=tuple(dp.bucket_counts),
                                explicit_bounds=tuple(dp.explicit_bounds),
                                min=dp.min,
                                max=dp.max,
                                data=dp,
                            )
                        )
                    else:
                        points.append(
                            MetricPoint(
                                name=metric.name,
                                attributes=dict(dp.attributes or {}),
                                value=getattr(dp, "value", 0),
                                unit=metric.unit or "",
                                data=dp,
                            )
                        )
    return points


class Captured:
    """What :func:`capture` hands out: the finished spans, metrics and log records."""

    def __init__(
        self,
        span_exporter: InMemorySpanExporter,
        metric_reader: InMemoryMetricReader,
        log_exporter: InMemoryLogRecordExporter,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        logger_provider: LoggerProvider,
    ) -> None:
        self.span_exporter = span_exporter
        self.metric_reader = metric_reader
        self.log_exporter = log_exporter
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.logger_provider = logger_provider
        self._last: list[MetricPoint] = []
        self._closed = False

    def spans(self) -> list[ReadableSpan]:
        """Finished spans, in the order they ended."""
        return list(self.span_exporter.get_finished_spans())

    def collect(self) -> list[MetricPoint]:
        """Force a metric collection now; returns its data points (cumulative values).

        After the ``capture()`` block has ended, returns the last collection, which the
        block's exit made.
        """
        if self._closed:
            return self._last
        drain()  # the drops and cuts of payload records of calls already made are counted
        self._last = _flatten(self.metric_reader.get_metrics_data())
        return self._last

    def metrics(self) -> list[MetricPoint]:
        """The data points of a fresh collection (cumulative since ``capture()`` began)."""
        return self.collect()

    def metric(self, name: str, /, **attributes: Any) -> MetricPoint:
        """The single data point of ``name`` whose attributes include ``attributes``.

        Pass dotted attribute names with ``**{"ml.model.name": "m"}``. Collects first.
        Raises ``LookupError`` when there is none or more than one.
        """
        points = self.collect()
        found = [
            p
            for p in points
            if p.name == name and all(p.attributes.get(k) == v for k, v in attributes.items())
        ]
        if len(found) != 1:
            raise LookupError(
                f"{len(found)} data points of {name!r} with {attributes!r}; "
                f"metrics present: {sorted({p.name for p in points})}"
            )
        return found[0]

    def logs(self) -> list[Any]:
        """Emitted log records (``ReadableLogRecord``), in order."""
        drain()
        return list(self.log_exporter.get_finished_logs())

    def clear(self) -> None:
        """Forget the spans and log records captured so far (metrics are cumulative)."""
        drain()
        self.span_exporter.clear()
        self.log_exporter.clear()
        self._last = []


@contextmanager
def capture(*, sampler: Sampler | None = None) -> Iterator[Captured]:
    """Capture modelotel's telemetry in memory for the duration of the block.

    Args:
        sampler: a trace sampler for the captured tracer provider (default: always on),
            e.g. ``ALWAYS_OFF`` to test the not-sampled path.

    Yields:
        A :class:`Captured` with ``spans()``, ``metrics()``, ``metric()``, ``logs()`` and
        ``collect()``.
    """
    span_exporter = InMemorySpanExporter()
    tp = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(span_exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    log_exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    saved = runtime.providers()
    drain()  # payload records of earlier calls go to their own providers, counted before
    # start from zero: counts of calls made before the capture are not the test's
    for model in list(runtime.models.values()):
        model.serving.reset()
    health.reset()  # skipped, dropped and error counts too
    held = runtime.hold_empty_windows
    runtime.hold_empty_windows = True
    runtime.set_providers(tp, mp, lp)
    _instruments.ensure()
    captured = Captured(span_exporter, reader, log_exporter, tp, mp, lp)
    try:
        yield captured
    finally:
        # a final collection, so metrics can be inspected after the block, like spans (it
        # waits for the payload worker: records of the block's calls go to its provider)
        with contextlib.suppress(Exception):
            captured.collect()
        captured._closed = True
        runtime.hold_empty_windows = held
        runtime.set_providers(*saved)
        _instruments.ensure()
        for provider in (tp, mp, lp):
            with contextlib.suppress(Exception):  # must not mask the test's own error
                provider.shutdown()
