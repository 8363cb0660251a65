"""The OpenTelemetry SDK providers and OTLP exporters that ``configure()`` builds or finds.

Example:
    >>> from modelotel._providers import Setup, signal_enabled
    >>> signal_enabled("traces", False), Setup(args={}).shut_down
    (False, False)

:func:`build` applies the rules of :func:`modelotel.configure` signal by signal: nothing
with ``OTEL_SDK_DISABLED=true``; a global provider the application already set is
attached to (and gets modelotel's exporter only with ``add_exporters_to_existing``);
otherwise an SDK provider with a batch processor (or a periodic metric reader) and an OTLP
exporter in a fork-safe wrapper (:mod:`modelotel._exporters`) is installed globally. What
it built is a :class:`Setup`, which :mod:`modelotel.setup` keeps, flushes and shuts down
within its deadlines. :func:`renew_metric_readers` gives a forked child fresh readers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import _logs, metrics, trace

from modelotel import _accounting, _exporters, _logfilter, _safety

_logger = logging.getLogger("modelotel")

_SERVICE_NAME = "service.name"
_EXPORTER_ENV = {
    "traces": "OTEL_TRACES_EXPORTER",
    "metrics": "OTEL_METRICS_EXPORTER",
    "logs": "OTEL_LOGS_EXPORTER",
}


@dataclass
class Setup:
    """What one ``configure()`` call built (or found) in this process."""

    args: dict[str, Any]
    disabled: bool = False
    shutdown_timeout: float = 5.0
    export_interval_ms: float | None = None
    # Providers modelotel created (and owns: shut down on shutdown()).
    tracer_provider: Any = None
    meter_provider: Any = None
    logger_provider: Any = None
    # Providers of the application that modelotel attached to (flushed, never shut down).
    attached: dict[str, Any] = field(default_factory=dict)
    span_processors: list[Any] = field(default_factory=list)
    log_processors: list[Any] = field(default_factory=list)
    metric_readers: list[Any] = field(default_factory=list)
    # Processors / readers modelotel added to providers that it does not own.
    foreign_components: list[Any] = field(default_factory=list)
    exporters: list[_exporters._ForkSafe] = field(default_factory=list)
    # The accounting of the span / log pipelines (one per batch processor of ours).
    ledgers: list[_accounting.Ledger] = field(default_factory=list)
    metric_exporter_factory: Callable[[], Any] | None = None
    shut_down: bool = False


def signal_enabled(signal: str, arg: bool | None) -> bool:
    if arg is not None:
        return arg
    var = _EXPORTER_ENV[signal]
    raw = os.environ.get(var, "").strip().lower()
    if not raw:
        return True
    names = {part.strip() for part in raw.split(",") if part.strip()}
    if names == {"none"}:
        return False
    if "otlp" not in names:
        _safety.health.warn_once(
            "env:" + var,
            "modelotel: configure() sets up OTLP exporters only; %s=%r is read as 'otlp'",
            var,
            raw,
        )
    return True


def _sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


# --- building ----------------------------------------------------------------------------


def build(args: dict[str, Any], shutdown_timeout: float) -> Setup:
    setup = Setup(args=args)
    setup.shutdown_timeout = shutdown_timeout
    if _sdk_disabled():
        setup.disabled = True
        _logger.info("modelotel: OTEL_SDK_DISABLED=true; configure() sets up nothing")
        return setup
    setup.export_interval_ms = args["export_interval_ms"]
    resource = _resource(args["service_name"], args["resource_attributes"])
    add_to_existing = args["add_exporters_to_existing"]

    def factory(signal: _exporters.Signal) -> Callable[[], Any]:
        protocol = _exporters.resolve_protocol(signal, args["protocol"])

        def make() -> Any:
            return _exporters.build_exporter(
                signal, protocol, args["endpoint"], args["headers"], args["export_timeout"]
            )

        return make

    # Metrics first: the batch processors built next take the global meter provider for
    # the SDK's own processor metrics (when OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED).
    if signal_enabled("metrics", args["metrics"]):
        _try_signal(
            "metrics", lambda: _setup_metrics(setup, resource, factory("metrics"), add_to_existing)
        )
    if signal_enabled("traces", args["traces"]):
        _try_signal(
            "traces", lambda: _setup_traces(setup, resource, factory("traces"), add_to_existing)
        )
    if signal_enabled("logs", args["logs"]):
        _try_signal("logs", lambda: _setup_logs(setup, resource, factory("logs"), add_to_existing))
    if setup.exporters:
        # Only when modelotel runs exporters: an application that brought its own providers
        # keeps its exporters' log lines as it configured them.
        _logfilter.install(sorted({_base_url(e.endpoint) for e in setup.exporters}))
    return setup


def _base_url(endpoint: str) -> str:
    """``http://host:4318/v1/traces`` -> ``http://host:4318``: one name for all signals."""
    from urllib.parse import urlsplit

    if "://" not in endpoint:
        return endpoint  # gRPC exporters keep host:port only
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else endpoint


def _try_signal(signal: str, fn: Callable[[], None]) -> None:
    # A bad OTEL_* value makes the SDK raise at construction (e.g. OTEL_BSP_MAX_QUEUE_SIZE=0).
    # That is a configuration problem of this signal: say so once, keep the others.
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - any SDK construction error: this signal stays off
        _logger.warning(
            "modelotel: could not set up %s (%s: %s); %s stay on the no-op API",
            signal,
            type(exc).__name__,
            exc,
            signal,
        )


def _resource(service_name: str | None, attributes: Mapping[str, Any] | None) -> Any:
    from opentelemetry.sdk.resources import Resource

    attrs: dict[str, Any] = dict(attributes or {})
    if service_name is not None:
        attrs[_SERVICE_NAME] = service_name
    # Resource.create merges the detectors (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME) first
    # and our attributes over them: argument > environment > SDK default.
    return Resource.create(attrs)


def _is_unset(provider: object) -> bool:
    """True for the API's proxy providers: the application installed nothing yet.

    Anything else (an SDK provider, a vendor's, or a no-op one set on purpose) belongs to the
    application and is attached to, never replaced.
    """
    from opentelemetry._logs._internal import ProxyLoggerProvider
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    return isinstance(
        provider, (trace.ProxyTracerProvider, _ProxyMeterProvider, ProxyLoggerProvider)
    )


def _setup_traces(setup: Setup, resource: Any, make: Callable[[], Any], add: bool) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    existing = trace.get_tracer_provider()
    if not _is_unset(existing):
        setup.attached["traces"] = existing
        if not add:
            return
        if not hasattr(existing, "add_span_processor"):
            _logger.warning("modelotel: the tracer provider in place takes no span processor")
            return
    exporter = _exporters.ForkSafeSpanExporter(make)
    processor = BatchSpanProcessor(exporter)
    _track(setup, processor, exporter, logs=False)
    setup.exporters.append(exporter)
    setup.span_processors.append(processor)
    if "traces" in setup.attached:
        setup.attached["traces"].add_span_processor(processor)
        setup.foreign_components.append(processor)
        return
    # Sampler: None lets the SDK read OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    setup.tracer_provider = provider


def _track(setup: Setup, processor: Any, exporter: Any, *, logs: bool) -> None:
    """Account for every record of the processor (before it is added to a provider)."""
    ledger = _accounting.track(processor, exporter, logs=logs)
    if ledger is not None:
        setup.ledgers.append(ledger)
    else:  # an SDK without the batch processor's internals: its queue counted at the deadline
        _logger.debug("modelotel: this opentelemetry-sdk's %s processor is not accounted for",
                      "log" if logs else "span")


def _new_reader(setup: Setup, make: Callable[[], Any]) -> Any:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter = _exporters.ForkSafeMetricExporter(make)
    setup.exporters.append(exporter)
    # export_interval_millis=None lets the SDK read OTEL_METRIC_EXPORT_INTERVAL.
    return PeriodicExportingMetricReader(exporter, export_interval_millis=setup.export_interval_ms)


def _setup_metrics(setup: Setup, resource: Any, make: Callable[[], Any], add: bool) -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    existing = metrics.get_meter_provider()
    setup.metric_exporter_factory = make
    if not _is_unset(existing):
        setup.attached["metrics"] = existing
        if not add:
            return
        if not hasattr(existing, "add_metric_reader"):
            _logger.warning(
                "modelotel: the meter provider in place takes no extra metric reader; "
                "modelotel's metrics go through its own readers"
            )
            return
        reader = _new_reader(setup, make)
        existing.add_metric_reader(reader)
        setup.metric_readers.append(reader)
        setup.foreign_components.append(reader)
        return
    reader = _new_reader(setup, make)
    provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
    metrics.set_meter_provider(provider)
    setup.metric_readers.append(reader)
    setup.meter_provider = provider


def _setup_logs(setup: Setup, resource: Any, make: Callable[[], Any], add: bool) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    existing = _logs.get_logger_provider()
    if not _is_unset(existing):
        setup.attached["logs"] = existing
        if not add:
            return
        if not hasattr(existing, "add_log_record_processor"):
            _logger.warning("modelotel: the logger provider in place takes no log processor")
            return
    exporter = _exporters.ForkSafeLogExporter(make)
    processor = BatchLogRecordProcessor(exporter)
    _track(setup, processor, exporter, logs=True)
    setup.exporters.append(exporter)
    setup.log_processors.append(processor)
    if "logs" in setup.attached:
        setup.attached["logs"].add_log_record_processor(processor)
        setup.foreign_components.append(processor)
        return
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    _logs.set_logger_provider(provider)
    setup.logger_provider = provider


class _DropCollectWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Cannot call collect"))


def renew_metric_readers(setup: Setup) -> None:
    """Swap our metric readers for new ones: the child starts with empty metric state.

    The SDK keeps cumulative aggregations per reader. A child that kept the parent's reader
    would export the parent's pre-fork counts again under its own ``service.instance.id``,
    so a fleet-wide sum would count them twice.
    """
    mp = setup.meter_provider
    make = setup.metric_exporter_factory
    if mp is None or make is None or not setup.metric_readers:
        return
    if not (hasattr(mp, "remove_metric_reader") and hasattr(mp, "add_metric_reader")):
        return
    export_logger = logging.getLogger("opentelemetry.sdk.metrics._internal.export")
    quiet = _DropCollectWarning()
    export_logger.addFilter(quiet)  # the old reader's last tick finds no provider: expected
    try:
        renewed = []
        for old in setup.metric_readers:
            mp.remove_metric_reader(old)  # its exporter wrapper is inherited: not closed
            new = _new_reader(setup, make)
            mp.add_metric_reader(new)
            renewed.append(new)
        setup.metric_readers = renewed
        setup.exporters = [
            e
            for e in setup.exporters
            if not e.is_inherited or not isinstance(e, _exporters.ForkSafeMetricExporter)
        ]
    finally:
        export_logger.removeFilter(quiet)
