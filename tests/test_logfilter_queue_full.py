"""A full span queue of the SDK's real BatchSpanProcessor is reported as what it is: the
queue is full at this call rate (raise OTEL_BSP_MAX_QUEUE_SIZE or sample), not an unreachable
collector; after failed exports it stays export trouble."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from modelotel import _logfilter

SDK_LOGGER = "opentelemetry.sdk._shared_internal"


class SlowExporter(SpanExporter):
    """A healthy exporter that takes its time: every export waits until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.release.wait(10)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def report_records(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[logging.LogRecord]]:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
    _logfilter.uninstall()
    _logfilter.install(endpoints=["http://127.0.0.1:4318"])
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(SDK_LOGGER)
    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        _logfilter.uninstall()


def _overflow(exporter: SlowExporter) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000,
                                             max_export_batch_size=2))
    tracer = tp.get_tracer("t")
    for _ in range(50):  # the worker is stuck in the first export: the queue of 4 overflows
        tracer.start_span("p").end()
    return tp


def test_queue_full_without_export_failures_names_the_call_rate_and_the_remedy(
    report_records: list[logging.LogRecord],
) -> None:
    exporter = SlowExporter()
    tp = _overflow(exporter)
    exporter.release.set()
    tp.shutdown()
    reports = [r for r in report_records if "queue" in r.getMessage().lower()]
    assert len(reports) == 1, [r.getMessage() for r in report_records]
    message = reports[0].getMessage()
    assert "span queue is full (4 items)" in message
    assert "at this call rate" in message
    assert "OTEL_BSP_MAX_QUEUE_SIZE" in message
    assert "OTEL_TRACES_SAMPLER" in message
    assert "cannot export" not in message
    assert "collector is not reporting errors" in message
    assert reports[0].levelno == logging.WARNING
    assert exporter.exported > 0


def test_queue_full_after_a_failed_export_is_reported_as_export_trouble(
    report_records: list[logging.LogRecord],
) -> None:
    logging.getLogger(SDK_LOGGER).error("Failed to export %s batch code: %s", "span", 503)
    exporter = SlowExporter()
    tp = _overflow(exporter)
    exporter.release.set()
    tp.shutdown()
    messages = [r.getMessage() for r in report_records]
    assert len(messages) == 1, messages
    assert messages[0].startswith("modelotel: cannot export telemetry to the OTLP collector")
    assert not any("at this call rate" in m for m in messages)
