"""setup.py pieces that need no global provider: validation, protocol choice, exporters,
the export-trouble log filter, drop accounting. (End-to-end cases: test_setup_global.py.)"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from modelotel import _accounting, _exporters, _logfilter, _providers, _safety, setup
from modelotel import attributes as A  # noqa: N812


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("OTEL_") or key == "MODELOTEL_SHUTDOWN_TIMEOUT":
            monkeypatch.delenv(key)


# --- configure() argument validation (raises before anything is set up) -----------------


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"service_name": 3}, TypeError, "service_name=...) takes a string"),
        ({"service_name": " "}, ValueError, "non-empty"),
        ({"endpoint": "localhost:4318"}, ValueError, "URL with a scheme"),
        ({"protocol": "http/json"}, ValueError, "use one of grpc, http/protobuf"),
        ({"protocol": 1}, TypeError, "protocol=...) takes a string"),
        ({"headers": {"a": 1}}, TypeError, "headers=...)"),
        ({"resource_attributes": ["a"]}, TypeError, "resource_attributes"),
        ({"traces": "yes"}, TypeError, "traces=...) takes True, False or None"),
        ({"export_interval_ms": 0}, ValueError, "positive number"),
        ({"shutdown_timeout": float("inf")}, ValueError, "positive number"),
        ({"export_timeout": "5"}, TypeError, "takes a number"),
        ({"shutdown_timeout": True}, TypeError, "takes a number"),
        ({"add_exporters_to_existing": 1}, TypeError, "takes a bool"),
    ],
)
def test_bad_arguments_raise_with_a_message(
    kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=r"modelotel\.configure") as info:
        setup.configure(**kwargs)
    assert fragment in str(info.value)
    assert setup._configured().setup is None


def test_validate_normalizes_headers_and_protocol() -> None:
    args = setup._validate(
        service_name=None,
        endpoint=None,
        protocol=" GRPC ",
        headers="api-key=secret,x-team=ml",
        resource_attributes={"a": 1},
        traces=None,
        metrics=False,
        logs=None,
        export_interval_ms=1000,
        export_timeout=None,
        shutdown_timeout=2,
        add_exporters_to_existing=False,
    )
    assert args["protocol"] == "grpc"
    assert args["headers"] == {"api-key": "secret", "x-team": "ml"}
    assert args["export_interval_ms"] == 1000.0
    assert args["shutdown_timeout"] == 2.0


def test_shutdown_and_flush_before_configure_are_noops() -> None:
    assert setup._configured().setup is None
    assert setup.shutdown() is True
    assert setup.force_flush(0.1) is True


# --- protocol and exporters -------------------------------------------------------------


def test_protocol_default_is_http_protobuf() -> None:
    assert _exporters.resolve_protocol("traces", None) == "http/protobuf"


def test_protocol_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert _exporters.resolve_protocol("logs", None) == "grpc"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf")
    assert _exporters.resolve_protocol("logs", None) == "http/protobuf"
    assert _exporters.resolve_protocol("traces", None) == "grpc"
    assert _exporters.resolve_protocol("traces", "http/protobuf") == "http/protobuf"


def test_unsupported_protocol_in_env_warns_once_and_uses_http(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with caplog.at_level(logging.WARNING, logger="modelotel"):
        assert _exporters.resolve_protocol("traces", None) == "http/protobuf"
        assert _exporters.resolve_protocol("metrics", None) == "http/protobuf"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='http/json'" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("signal", "path"), [("traces", "v1/traces"), ("metrics", "v1/metrics"), ("logs", "v1/logs")]
)
def test_http_exporters_append_the_signal_path(signal: _exporters.Signal, path: str) -> None:
    exporter = _exporters.build_exporter(signal, "http/protobuf", "http://collector:4318/")
    # the span exporter is the stock one with modelotel's encoder (a subclass)
    assert any(c.__module__.startswith("opentelemetry.exporter.otlp.proto.http.")
               for c in type(exporter).__mro__)
    assert exporter._endpoint == f"http://collector:4318/{path}"
    exporter.shutdown()


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_grpc_exporters(signal: _exporters.Signal) -> None:
    exporter = _exporters.build_exporter(
        signal, "grpc", "http://collector:4317", headers={"k": "v"}, timeout=1.5
    )
    assert any(c.__module__.startswith("opentelemetry.exporter.otlp.proto.grpc.")
               for c in type(exporter).__mro__)
    assert exporter._endpoint == "collector:4317"
    assert exporter._timeout == 1.5
    assert exporter._headers == (("k", "v"),)
    exporter.shutdown()


def test_exporters_read_their_own_env_when_no_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://env-host:9999/custom")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
    exporter = _exporters.build_exporter("traces", "http/protobuf")
    assert exporter._endpoint == "http://env-host:9999/custom"
    assert exporter._client._timeout == 3.0
    exporter.shutdown()
    # An argument wins over the per-signal variable.
    exporter = _exporters.build_exporter(
        "traces", "http/protobuf", "http://arg-host:4318", timeout=2
    )
    assert exporter._endpoint == "http://arg-host:4318/v1/traces"
    assert exporter._client._timeout == 2
    exporter.shutdown()


def test_metric_wrapper_keeps_the_exporters_temporality(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.metrics import Counter
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    wrapper = _exporters.ForkSafeMetricExporter(
        lambda: _exporters.build_exporter("metrics", "http/protobuf", "http://127.0.0.1:1")
    )
    assert wrapper._preferred_temporality[Counter] is AggregationTemporality.DELTA
    wrapper.shutdown()
    assert wrapper.inner._shutdown is True


# --- the export-trouble log filter ------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def trouble_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[logging.Logger, list[Any]]]:
    clock = _Clock()
    monkeypatch.setattr(_logfilter, "time", clock)
    logger = logging.getLogger("modelotel.test.trouble")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    flt = _logfilter.ExportTroubleFilter(["http://collector:4318"])
    logger.addFilter(flt)
    yield logger, [records, clock, flt]
    logger.removeFilter(flt)
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def test_filter_turns_a_storm_into_one_line_per_window(
    trouble_logger: tuple[logging.Logger, list[Any]],
) -> None:
    logger, (records, clock, flt) = trouble_logger
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError:
        for _ in range(40):
            logger.exception("Exception while exporting %s.", "Span")
    for _ in range(10):
        logger.warning("Transient error %s encountered while exporting %s", "boom", "spans")
    logger.warning("Queue full, dropping %s.", "Span")
    assert len(records) == 1
    [report] = records
    message = report.getMessage()
    assert message.startswith(
        "modelotel: cannot export telemetry to the OTLP collector at http://collector:4318 "
        "(Exception while exporting Span. ConnectionRefusedError: [Errno 111] Connection refused)"
    )
    assert report.levelno == logging.WARNING
    assert report.exc_info is None
    assert flt.suppressed == 50

    clock.now += _logfilter.INTERVAL_S + 0.1
    logger.error("Failed to export %s batch code: %s, reason: %s", "spans", 503, "down")
    assert len(records) == 2
    assert "50 similar messages suppressed" in records[1].getMessage()
    assert "Failed to export spans batch code: 503, reason: down" in records[1].getMessage()
    assert flt.reported == 2


def test_filter_lets_other_records_through_unchanged(
    trouble_logger: tuple[logging.Logger, list[Any]],
) -> None:
    logger, (records, _, flt) = trouble_logger
    logger.warning("Invalid timeout value %r, using default of %s seconds", "x", 10)
    logger.info("Shutdown called, ignoring %s.", "Span")
    logger.debug("Failed to export (debug records are not ours to touch)")
    assert [r.getMessage() for r in records] == [
        "Invalid timeout value 'x', using default of 10 seconds",
        "Shutdown called, ignoring Span.",
        "Failed to export (debug records are not ours to touch)",
    ]
    assert flt.reported == 0


def test_install_attaches_to_the_sdk_export_loggers() -> None:
    try:
        flt = _logfilter.install(["http://a:4318"])
        assert _logfilter.install() is flt  # idempotent, keeps the endpoints
        assert flt.endpoints == ("http://a:4318",)
        for name in (
            "opentelemetry.exporter.otlp.proto.grpc.exporter",
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
            "opentelemetry.sdk._shared_internal",
            "opentelemetry.sdk.metrics._internal.export",
        ):
            assert flt in logging.getLogger(name).filters
    finally:
        _logfilter.uninstall()
    assert not _logfilter.installed()
    assert all(
        not isinstance(f, _logfilter.ExportTroubleFilter)
        for f in logging.getLogger("opentelemetry.sdk._shared_internal").filters
    )


def test_base_url_names_one_endpoint_for_all_signals() -> None:
    assert _providers._base_url("http://h:4318/v1/traces") == "http://h:4318"
    assert _providers._base_url("h:4317") == "h:4317"


# --- drops are counted --------------------------------------------------------------------


class _BlockingExporter(SpanExporter):
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(10)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_queue_full_and_after_shutdown_drops_are_counted() -> None:
    exporter = _BlockingExporter()
    processor = BatchSpanProcessor(
        exporter, max_queue_size=2, max_export_batch_size=2, schedule_delay_millis=60_000
    )
    assert isinstance(_accounting.track(processor, exporter, logs=False), _accounting.Ledger)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for _ in range(2):  # a full batch: the worker takes it and blocks in export
        tracer.start_span("s").end()
    assert exporter.entered.wait(5)
    for _ in range(5):  # 2 fit in the queue, 3 are dropped
        tracer.start_span("s").end()
    assert _safety.health.dropped[A.REASON_SPAN_QUEUE_FULL] == 3
    assert _accounting.queued(processor) == 2
    exporter.release.set()
    provider.shutdown()
    tracer.start_span("late").end()
    assert _safety.health.dropped[A.REASON_SPAN_AFTER_SHUTDOWN] == 1


def test_tracking_is_a_noop_without_the_processor_internals() -> None:
    assert _accounting.track(object(), object(), logs=False) is None
    assert _accounting.queued(object()) == 0


class _Failing:
    def __init__(self, result: Any = None, exc: Exception | None = None) -> None:
        self.result = result
        self.exc = exc

    def export(self, batch: Any) -> Any:
        if self.exc is not None:
            raise self.exc
        return self.result

    def shutdown(self) -> None:
        pass


def test_failed_span_and_log_exports_are_counted() -> None:
    from opentelemetry.sdk._logs.export import LogRecordExportResult

    spans = _exporters.ForkSafeSpanExporter(lambda: _Failing(SpanExportResult.FAILURE))
    assert spans.export([object(), object(), object()]) is SpanExportResult.FAILURE  # type: ignore[list-item]
    logs = _exporters.ForkSafeLogExporter(lambda: _Failing(LogRecordExportResult.FAILURE))
    assert logs.export([object()]) is LogRecordExportResult.FAILURE  # type: ignore[list-item]
    boom = _exporters.ForkSafeSpanExporter(lambda: _Failing(exc=ConnectionError("x")))
    with pytest.raises(ConnectionError):  # re-raised for the batch processor, as before
        boom.export([object(), object()])  # type: ignore[list-item]
    ok = _exporters.ForkSafeSpanExporter(lambda: _Failing(SpanExportResult.SUCCESS))
    assert ok.export([object()]) is SpanExportResult.SUCCESS  # type: ignore[list-item]
    assert dict(_safety.health.dropped) == {
        A.REASON_SPAN_EXPORT_FAILED: 5,
        A.REASON_LOG_EXPORT_FAILED: 1,
    }
