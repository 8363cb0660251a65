"""What the benchmarks share: discarding exporters, the bare-span reference S, and the
calibrated, interleaved timing of a list of cases.

Usage (from a script in this folder, which puts the folder on ``sys.path``)::

    from _harness import bare_span, calibrate, discarding_tracer_provider, interleaved_repeats

    tp = discarding_tracer_provider()
    cases = [("S: bare OTel span", setup, bare_span(tp.get_tracer("bench"), f, x)), ...]
    results = interleaved_repeats(cases, calibrate(cases, min_time=0.1), repeats=9)
"""

from __future__ import annotations

import gc
import statistics
import timeit
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.trace import Tracer

# (label, setup run before each timed run of the case, the statement timed)
Case = tuple[str, Callable[[], None], Callable[[], Any]]


class DiscardSpanExporter(SpanExporter):
    """Counts and drops spans."""

    def __init__(self) -> None:
        self.n = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.n += len(spans)
        return SpanExportResult.SUCCESS


class DiscardMetricExporter(MetricExporter):
    """Drops metrics."""

    def __init__(self) -> None:
        super().__init__()

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


class DiscardLogExporter(LogRecordExporter):
    """Counts and drops log records."""

    def __init__(self) -> None:
        self.n = 0

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        self.n += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def discarding_tracer_provider(sampler: Sampler | None = None) -> TracerProvider:
    """The SDK ``TracerProvider`` with a ``BatchSpanProcessor`` and a discarding exporter.

    ``sampler=None`` keeps the SDK's default (parent-based, always on).
    """
    tp = TracerProvider(sampler=sampler)
    tp.add_span_processor(BatchSpanProcessor(DiscardSpanExporter()))
    return tp


def discarding_meter_provider() -> MeterProvider:
    """A ``MeterProvider`` whose periodic reader exports (to nowhere) once an hour."""
    reader = PeriodicExportingMetricReader(
        DiscardMetricExporter(), export_interval_millis=3_600_000
    )
    return MeterProvider(metric_readers=[reader])


def bare_span(tracer: Tracer, f: Callable[[Any], Any], x: Any) -> Callable[[], None]:
    """S, the reference every ratio is expressed in: ``f(x)`` inside a bare OTel span."""

    def run() -> None:
        with tracer.start_as_current_span("p"):
            f(x)

    return run


def timed_gc_on(stmt: Callable[[], object], n: int) -> float:
    """Seconds for ``n`` calls of ``stmt`` with the garbage collector ON.

    ``timeit.timeit`` turns GC off while it times; a real server runs with it on, and the
    SDK's per-call allocations pay for it there, so every case (S included) is timed with it.
    """
    return timeit.Timer(stmt, setup=gc.enable).timeit(number=n)


def calibrate(cases: Sequence[Case], min_time: float) -> dict[str, int]:
    """Loop count per case so that one timed run of it takes about ``min_time`` seconds."""
    loops: dict[str, int] = {}
    for label, setup, stmt in cases:
        setup()
        n = 1
        while True:
            dt = timed_gc_on(stmt, n)
            if dt >= min_time / 4 or n >= 10_000_000:
                break
            n *= 4
        loops[label] = max(1, int(n * (min_time / max(dt, 1e-9))))
    return loops


def interleaved_repeats(
    cases: Sequence[Case],
    loops: dict[str, int],
    repeats: int,
    alternate: tuple[int, int] | None = None,
) -> dict[str, list[float]]:
    """Microseconds per call of each case, one list entry per repeat, round-robin over the cases.

    ``alternate=(i, j)``: cases ``i`` and ``j`` swap places every other repeat (ABBA), so drift
    in machine load between the two does not bias their difference.
    """
    results: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    gc.enable()
    for rep in range(repeats):
        order = list(cases)
        if alternate is not None and rep % 2:
            i, j = alternate
            order[i], order[j] = order[j], order[i]
        for label, setup, stmt in order:
            setup()
            n = loops[label]
            results[label].append(timed_gc_on(stmt, n) / n * 1e6)
    return results


def print_cases(results: dict[str, list[float]], s: float) -> int:
    """Prints the table of medians, ranges and ratios to ``s``; returns the label width."""
    med = {label: statistics.median(v) for label, v in results.items()}
    width = max(len(label) for label in med)
    print(f"{'case':<{width}}  {'median us':>10}  {'min-max us':>15}  {'x S':>6}")
    for label, values in results.items():
        print(
            f"{label:<{width}}  {med[label]:>10.3f}  {min(values):>7.2f}-{max(values):<7.2f}"
            f"  {med[label] / s:>6.3f}"
        )
    return width
