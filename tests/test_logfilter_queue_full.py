"""A full span queue of the SDK's real BatchSpanProcessor is reported as what it is: the
queue is full at this call rate (raise OTEL_BSP_MAX_QUEUE_SIZE or sample), not an unreachable
collector; after failed exports it stays export trouble.

Each scenario runs in a fresh interpreter: the SDK's logger is process-wide, and processors
that earlier tests left retrying against unreachable endpoints would log export failures
into it at any moment, which is exactly what changes the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCENARIO = textwrap.dedent(
    """
    import json, logging, os, sys, threading
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = "4"
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor, SpanExporter, SpanExportResult)
    from modelotel import _logfilter

    SDK_LOGGER = "opentelemetry.sdk._shared_internal"

    class SlowExporter(SpanExporter):
        # a healthy exporter that takes its time: every export waits until released
        def __init__(self):
            self.release = threading.Event()
            self.exported = 0

        def export(self, spans):
            self.release.wait(10)
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

    _logfilter.install(endpoints=["http://127.0.0.1:4318"])
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.levelno, record.getMessage()))

    logging.getLogger(SDK_LOGGER).addHandler(Keep(logging.WARNING))
    if sys.argv[1] == "failed-first":
        logging.getLogger(SDK_LOGGER).error("Failed to export %s batch code: %s", "span", 503)
    exporter = SlowExporter()
    tp = TracerProvider()
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000,
                                   max_export_batch_size=2)
    if sys.argv[1] == "tracked":  # as configure() builds it: the queue reports overflows
        from modelotel import _accounting
        assert _accounting.track(processor, exporter, logs=False) is not None
    tp.add_span_processor(processor)
    tracer = tp.get_tracer("t")
    for _ in range(50):  # the worker is stuck in the first export: the queue of 4 overflows
        tracer.start_span("p").end()
    exporter.release.set()
    tp.shutdown()
    print(json.dumps({"records": records, "exported": exporter.exported}))
    """
)


def _run(mode: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", SCENARIO, mode], capture_output=True,
                         text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("mode", ["healthy", "tracked"])
def test_queue_full_without_export_failures_names_the_call_rate_and_the_remedy(
    mode: str,
) -> None:
    result = _run(mode)
    records = result["records"]
    assert isinstance(records, list)
    reports = [(level, m) for level, m in records if "queue" in m.lower()]
    assert len(reports) == 1, records
    level, message = reports[0]
    assert "span queue is full (4 items)" in message
    assert "at this call rate" in message
    assert "OTEL_BSP_MAX_QUEUE_SIZE" in message
    assert "OTEL_TRACES_SAMPLER" in message
    assert "cannot export" not in message
    assert "collector is not reporting errors" in message
    assert level == 30  # logging.WARNING
    exported = result["exported"]
    assert isinstance(exported, int)
    assert exported > 0


def test_queue_full_after_a_failed_export_is_reported_as_export_trouble() -> None:
    records = _run("failed-first")["records"]
    assert isinstance(records, list)
    messages = [m for _, m in records]
    assert len(messages) == 1, messages
    assert messages[0].startswith("modelotel: cannot export telemetry to the OTLP collector")
    assert not any("at this call rate" in m for m in messages)
