"""Every span and log record handed to a batch processor is delivered or counted, exactly once.

These tests drive the pieces of ``modelotel._accounting`` with real SDK batch processors and
exporters that block, fail or succeed on command; ``tests/reliability`` checks the same
identity end to end against real endpoints and the real collector.
"""

from __future__ import annotations

import gc
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from modelotel import _accounting, _exporters, _safety
from modelotel import attributes as A  # noqa: N812


def _dropped(prefix: str = "") -> dict[str, int]:
    return {k: v for k, v in _safety.health.dropped.items() if k.startswith(prefix) and v}


class _Gate:
    """An inner exporter that blocks each export until released, then answers ``result``."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.entered = threading.Event()
        self.release = threading.Event()
        self.exported: list[Any] = []

    def export(self, batch: Sequence[Any]) -> Any:
        self.entered.set()
        self.release.wait(30)
        if self.result is SpanExportResult.SUCCESS or self.result is LogRecordExportResult.SUCCESS:
            self.exported.extend(batch)
        return self.result

    def shutdown(self, **kwargs: Any) -> None:
        self.release.set()

    def force_flush(self, timeout_millis: int = 0) -> bool:
        return True


def test_the_queue_counts_exactly_what_falls_out_under_concurrency() -> None:
    queue = _accounting.CountingQueue(64, _accounting.span_kind)
    taken: list[Any] = []
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set() or queue:
            item = queue.pop()
            if item is not _accounting.GONE:
                taken.append(item)

    def producer(base: int) -> None:
        for i in range(20_000):
            queue.appendleft(base + i)

    consumer = threading.Thread(target=worker)
    consumer.start()
    producers = [threading.Thread(target=producer, args=(k * 1_000_000,)) for k in range(6)]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    stop.set()
    consumer.join()
    dropped = _safety.health.dropped[A.REASON_SPAN_QUEUE_FULL]
    assert len(taken) + dropped + len(queue) == 6 * 20_000
    assert len(set(taken)) == len(taken)  # nothing taken twice
    assert dropped > 0  # the worker could not keep up: the count above was exercised


def test_a_frozen_queue_counts_its_records_and_takes_no_more() -> None:
    queue = _accounting.CountingQueue(10, _accounting.span_kind)
    for i in range(4):
        queue.appendleft(i)
    assert queue.freeze() == {"span_shutdown_timeout": 4}
    assert queue.pop() is _accounting.GONE
    queue.appendleft("late")
    assert len(queue) == 0
    assert _dropped() == {"span_shutdown_timeout": 5}


def _traced(result: Any) -> tuple[TracerProvider, _Gate, _accounting.Ledger, Any]:
    gate = _Gate(result)
    exporter = _exporters.ForkSafeSpanExporter(lambda: gate)
    processor = BatchSpanProcessor(exporter, max_queue_size=100, max_export_batch_size=10,
                                   schedule_delay_millis=60_000)
    ledger = _accounting.track(processor, exporter, logs=False)
    assert ledger is not None
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider, gate, ledger, processor


def _spans(provider: TracerProvider, n: int) -> None:
    tracer = provider.get_tracer("t")
    for _ in range(n):
        tracer.start_span("s").end()


def test_an_overflowing_queue_logs_once_per_interval_and_counts_every_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the processor's own check would log a warning for each record that falls out: on the
    # calling thread, once per call while the process outruns its export thread
    import logging

    monkeypatch.setattr(_accounting, "FULL_REPORT_EVERY_S", 3600.0)
    provider, gate, _, processor = _traced(SpanExportResult.SUCCESS)
    batch = processor._batch_processor
    heard: list[int] = []
    inner = batch._metrics._inner
    monkeypatch.setattr(inner, "drop_items", lambda count, *a, **k: heard.append(count))
    seen: list[str] = []

    class Seen(logging.Filter):  # sees every record made, before any other filter
        def filter(self, record: logging.LogRecord) -> bool:
            seen.append(record.getMessage())
            return False

    sdk_logger = logging.getLogger(type(batch).__module__)
    spy = Seen()
    sdk_logger.filters.insert(0, spy)
    try:
        _spans(provider, 10)  # a full batch: the worker takes it and blocks in the export
        assert gate.entered.wait(5)
        _spans(provider, 100 + 500)  # fills the queue of 100, then 500 fall out
    finally:
        sdk_logger.removeFilter(spy)
    assert _dropped() == {"span_queue_full": 500}
    assert sum(heard) == 500  # the SDK's own metrics hook heard of each
    assert [m for m in seen if "Queue full" in m] == ["Queue full, dropping Span."]
    gate.release.set()
    provider.shutdown()
    assert len(gate.exported) == 110


def test_the_deadline_counts_the_export_in_flight_and_the_queue() -> None:
    provider, gate, ledger, _ = _traced(SpanExportResult.SUCCESS)
    _spans(provider, 10)  # a full batch: the worker takes it and blocks in the export
    assert gate.entered.wait(5)
    _spans(provider, 25)
    counts = ledger.cut()
    assert counts == {"span_export_cut": 10, "span_shutdown_timeout": 25}
    gate.result = SpanExportResult.FAILURE  # the cut export fails later: not counted again
    gate.release.set()
    provider.shutdown()
    assert _dropped() == {"span_export_cut": 10, "span_shutdown_timeout": 25}
    assert gate.exported == []


def test_a_cut_export_that_is_delivered_after_all_is_taken_back() -> None:
    provider, gate, ledger, _ = _traced(SpanExportResult.SUCCESS)
    _spans(provider, 10)
    assert gate.entered.wait(5)
    assert ledger.cut() == {"span_export_cut": 10}
    gate.release.set()  # the collector answered after the deadline; the process lived on
    provider.shutdown()
    assert len(gate.exported) == 10
    assert _dropped() == {}


def test_nothing_is_exported_after_the_deadline() -> None:
    provider, gate, ledger, processor = _traced(SpanExportResult.SUCCESS)
    gate.release.set()
    ledger.cut()
    exporter = processor._batch_processor._exporter
    assert exporter.export(["a", "b", _accounting.GONE]) is SpanExportResult.FAILURE
    assert gate.exported == []
    assert _dropped() == {"span_shutdown_timeout": 2}
    provider.shutdown()


def test_failed_exports_are_counted_once_per_record() -> None:
    provider, gate, _, _ = _traced(SpanExportResult.FAILURE)
    gate.release.set()
    _spans(provider, 30)
    provider.shutdown()
    assert _dropped() == {"span_export_failed": 30}


def _log_provider(gate: _Gate, queue: int = 100, batch: int = 10) -> tuple[Any, Any]:
    exporter = _exporters.ForkSafeLogExporter(lambda: gate)
    processor = BatchLogRecordProcessor(exporter, max_queue_size=queue,
                                        max_export_batch_size=batch,
                                        schedule_delay_millis=60_000)
    ledger = _accounting.track(processor, exporter, logs=True)
    assert ledger is not None
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    return provider, ledger


def _emit(provider: Any, event_name: str | None, n: int) -> None:
    logger = provider.get_logger("t")
    for _ in range(n):
        logger.emit(event_name=event_name, severity_number=SeverityNumber.INFO, body="b")


def test_log_records_are_counted_by_kind_at_every_stage() -> None:
    gate = _Gate(LogRecordExportResult.FAILURE)
    provider, ledger = _log_provider(gate, queue=20, batch=10)
    _emit(provider, A.EVENT_PREDICTION_PAYLOAD, 10)  # a full batch, blocked in export
    assert gate.entered.wait(5)
    _emit(provider, A.EVENT_PREDICTION_OUTCOME, 15)
    _emit(provider, "app.event", 10)  # 35 > 20 queued: the 5 oldest outcomes fall out
    assert _dropped() == {"outcome_queue_full": 5}
    counts = ledger.cut()
    assert counts == {"payload_export_cut": 10, "outcome_shutdown_timeout": 10,
                      "log_shutdown_timeout": 10}
    gate.release.set()
    provider.shutdown()
    _emit(provider, A.EVENT_PREDICTION_PAYLOAD, 2)
    _emit(provider, None, 1)
    assert _dropped() == {
        "payload_export_cut": 10,
        "outcome_queue_full": 5,
        "outcome_shutdown_timeout": 10,
        "log_shutdown_timeout": 10,
        "payload_after_shutdown": 2,
        "log_after_shutdown": 1,
    }


def test_failed_log_exports_are_counted_by_kind() -> None:
    gate = _Gate(LogRecordExportResult.FAILURE)
    gate.release.set()
    provider, _ = _log_provider(gate)
    _emit(provider, A.EVENT_PREDICTION_PAYLOAD, 3)
    _emit(provider, A.EVENT_PREDICTION_OUTCOME, 2)
    provider.shutdown()
    assert _dropped() == {"payload_export_failed": 3, "outcome_export_failed": 2}


def test_an_exporter_that_raises_counts_its_batch_and_the_error_reaches_the_processor() -> None:
    class Raising:
        def export(self, batch: Sequence[ReadableSpan]) -> SpanExportResult:
            raise ConnectionError("boom")

        def shutdown(self) -> None:
            pass

    exporter = _exporters.ForkSafeSpanExporter(lambda: Raising())
    processor = BatchSpanProcessor(exporter, max_export_batch_size=5)
    ledger = _accounting.track(processor, exporter, logs=False)
    assert isinstance(ledger, _accounting.Ledger)
    with pytest.raises(ConnectionError):
        exporter.export([object(), object()])  # type: ignore[list-item]
    assert _dropped() == {"span_export_failed": 2}
    processor.shutdown()


@pytest.mark.parametrize(
    ("event_name", "kind"),
    [
        (A.EVENT_PREDICTION_PAYLOAD, A.RECORD_PAYLOAD),
        (A.EVENT_PREDICTION_OUTCOME, A.RECORD_OUTCOME),
        ("other", A.RECORD_LOG),
        (None, A.RECORD_LOG),
    ],
)
def test_log_record_kinds(event_name: str | None, kind: str) -> None:
    class Record:
        class log_record:  # noqa: N801 - the shape of a ReadableLogRecord
            pass

    Record.log_record.event_name = event_name  # type: ignore[attr-defined]
    assert _accounting.log_record_kind(Record()) == kind
    assert _accounting.log_record_kind(object()) == A.RECORD_LOG


def test_kinds_of_real_sdk_records() -> None:
    gate = _Gate(LogRecordExportResult.SUCCESS)
    gate.release.set()
    provider, _ = _log_provider(gate, batch=1)
    _emit(provider, A.EVENT_PREDICTION_OUTCOME, 1)
    provider.force_flush()
    provider.shutdown()
    (record,) = gate.exported
    assert isinstance(record, ReadableLogRecord)
    assert Counter(map(_accounting.log_record_kind, gate.exported)) == {A.RECORD_OUTCOME: 1}


class _HoldsItsError:
    """An exporter that fails the way OTLP exporters do: it keeps the exception it caught in
    a local, so its frame and the exception's traceback form a reference cycle."""

    def export(self, batch: Sequence[Any]) -> SpanExportResult:
        try:
            raise ConnectionError("refused")
        except ConnectionError as exc:
            last_error = exc
        assert last_error is not None
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 0) -> bool:
        return True


@pytest.mark.parametrize("wrapped", [False, True])
def test_records_of_a_failed_export_do_not_wait_for_the_cyclic_collector(wrapped: bool) -> None:
    """Without modelotel's exporter around it (``wrapped=False``) the failing exporter's
    cycle keeps the whole batch until a full collection: the test shows the problem it
    guards against is real, and that the wrapper removes it."""
    exporter: Any = (_exporters.ForkSafeSpanExporter(_HoldsItsError) if wrapped
                     else _HoldsItsError())
    processor = BatchSpanProcessor(exporter, max_export_batch_size=50,
                                   schedule_delay_millis=60_000)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(200):
            with tracer.start_as_current_span("s"):
                pass
        provider.force_flush()
        gc.collect()
        held = sum(isinstance(o, ReadableSpan) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()
        provider.shutdown()
    if wrapped:
        assert held == 0
    else:
        assert held >= 150  # all but the batch of the last frame still running
