"""``configure()``: the OpenTelemetry SDK with OTLP exporters, with bounded shutdown.

Example:
    >>> import modelotel
    >>> modelotel.configure(service_name="churn-api")   # doctest: +SKIP
    >>> # ... serve predictions ...
    >>> modelotel.shutdown()                              # doctest: +SKIP

One call sets up a ``TracerProvider`` (``BatchSpanProcessor``), a ``MeterProvider``
(``PeriodicExportingMetricReader``) and a ``LoggerProvider`` (``BatchLogRecordProcessor``),
each exporting over OTLP (gRPC or HTTP/protobuf per ``OTEL_EXPORTER_OTLP_PROTOCOL`` and its
per-signal variants), and installs them as the global OpenTelemetry providers so that other
instrumentation (FastAPI, requests, ...) shares them.

Rules, in the order they apply:

* ``OTEL_SDK_DISABLED=true``: nothing is set up; modelotel runs on the no-op API.
* A signal whose global provider the application already set (by hand or through
  ``opentelemetry-instrument``) is *attached to*: modelotel uses that provider and replaces
  nothing; it adds its own exporter to it only with ``add_exporters_to_existing=True``.
* Settings resolve argument > standard ``OTEL_*`` environment variable > default. The SDK
  and the exporters read their variables themselves (``OTEL_SERVICE_NAME``,
  ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_*``, ``OTEL_TRACES_SAMPLER[_ARG]``,
  ``OTEL_BSP_*``, ``OTEL_BLRP_*``, ``OTEL_METRIC_EXPORT_INTERVAL``,
  ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none``); modelotel passes a value only when the
  caller gave one.
* Every process carries its own ``service.instance.id`` (a UUID4 unless the user set one;
  a forked child always gets a new one).

Bounded exit: the stock SDK can spend about 30 s in ``shutdown()`` (and at interpreter
exit) when the collector is unreachable or hangs, because the batch processor joins its
worker for 30 s and ``force_flush`` ignores its timeout. :func:`shutdown` and
:func:`force_flush` here run the SDK's calls in daemon threads and wait for them at most
``shutdown_timeout`` seconds (default 5, ``MODELOTEL_SHUTDOWN_TIMEOUT``); modelotel's
providers are created with ``shutdown_on_exit=False`` and one ``atexit`` hook of ours
applies the same deadline at interpreter exit. Whatever is still queued then is dropped and
counted (``ml.telemetry.dropped{ml.telemetry.reason="shutdown_timeout"}``).

Fork: after ``os.fork()`` (gunicorn, uvicorn workers, ``multiprocessing``) the SDK restarts
its worker threads, clears the inherited span / log queues (nothing the parent buffered is
exported by the child) and refreshes ``service.instance.id``. modelotel adds what it does
not do: fresh exporters in the child (no HTTP connection or gRPC channel shared with the
parent), fresh metric readers (the parent's cumulative metric state is not re-exported under
the child's identity) and a new provider generation so that monitors rebuild their
instruments.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import _logs, metrics, trace

from modelotel import _accounting, _exporters, _logfilter, _safety, _state
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel.environment_variables import MODELOTEL_SHUTDOWN_TIMEOUT

__all__ = ["configure", "force_flush", "shutdown"]

_logger = logging.getLogger("modelotel")

#: Default deadline of :func:`shutdown`, :func:`force_flush` and of interpreter exit (s).
DEFAULT_SHUTDOWN_TIMEOUT = 5.0

_SERVICE_NAME = "service.name"
_SERVICE_INSTANCE_ID = "service.instance.id"
_EXPORTER_ENV = {
    "traces": "OTEL_TRACES_EXPORTER",
    "metrics": "OTEL_METRICS_EXPORTER",
    "logs": "OTEL_LOGS_EXPORTER",
}


@dataclass
class _Setup:
    """What one ``configure()`` call built (or found) in this process."""

    args: dict[str, Any]
    disabled: bool = False
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
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


_lock = threading.Lock()
_setup: _Setup | None = None
_hooks_registered = False


# --- public API --------------------------------------------------------------------------


def configure(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | str | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    traces: bool | None = None,
    metrics: bool | None = None,
    logs: bool | None = None,
    export_interval_ms: float | None = None,
    export_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    add_exporters_to_existing: bool = False,
) -> None:
    """Set up OpenTelemetry with OTLP exporters for traces, metrics and logs.

    Call it once, early (a second call is a no-op). Every argument is optional; ``None``
    means "the standard ``OTEL_*`` environment variable, else the SDK's default".

    Args:
        service_name: ``service.name`` (else ``OTEL_SERVICE_NAME`` /
            ``OTEL_RESOURCE_ATTRIBUTES``, else the SDK's ``unknown_service``).
        endpoint: base URL of the OTLP receiver, as ``OTEL_EXPORTER_OTLP_ENDPOINT``
            (``http://collector:4318`` for HTTP, ``http://collector:4317`` for gRPC); wins
            over the per-signal endpoint variables too.
        protocol: ``"http/protobuf"`` or ``"grpc"`` for all signals (else
            ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``, else
            ``http/protobuf``).
        headers: extra request headers (a mapping or ``"k1=v1,k2=v2"``), e.g. an API key.
        resource_attributes: merged over ``OTEL_RESOURCE_ATTRIBUTES``.
        traces: set up traces (``None``: unless ``OTEL_TRACES_EXPORTER=none``).
        metrics: set up metrics (``None``: unless ``OTEL_METRICS_EXPORTER=none``).
        logs: set up logs, which carry sampled payloads (``None``: unless
            ``OTEL_LOGS_EXPORTER=none``).
        export_interval_ms: metric export interval (else ``OTEL_METRIC_EXPORT_INTERVAL``,
            else 60000).
        export_timeout: seconds one export may take, retries included (else
            ``OTEL_EXPORTER_OTLP_[<SIGNAL>_]TIMEOUT``, else 10).
        shutdown_timeout: seconds that :func:`shutdown`, :func:`force_flush` and interpreter
            exit may take at most (else ``MODELOTEL_SHUTDOWN_TIMEOUT``, else 5).
        add_exporters_to_existing: when the application already set SDK providers, also add
            modelotel's OTLP exporters to them (default: use them as they are).

    Raises:
        TypeError, ValueError: an argument is invalid (the message says which and why).
    """
    global _setup
    args = _validate(
        service_name=service_name,
        endpoint=endpoint,
        protocol=protocol,
        headers=headers,
        resource_attributes=resource_attributes,
        traces=traces,
        metrics=metrics,
        logs=logs,
        export_interval_ms=export_interval_ms,
        export_timeout=export_timeout,
        shutdown_timeout=shutdown_timeout,
        add_exporters_to_existing=add_exporters_to_existing,
    )
    with _lock:
        if _setup is not None:
            if _setup.args == args:
                _logger.debug("modelotel: configure() was already called; nothing to do")
            else:
                _safety.health.warn_once(
                    "setup.configure_again",
                    "modelotel: configure() was already called in this process; the new "
                    "arguments are ignored (OpenTelemetry providers can be set only once)",
                )
            return
        _setup = _build(args)
        _register_process_hooks()
    # Monitors built before configure() hold tracers / meters of the API's proxies, which
    # forward to the new providers anyway; a new generation lets them take the SDK's own
    # objects directly (one indirection less per call).
    _state.bump_generation()


def shutdown(timeout: float | None = None) -> bool:
    """Export what is buffered and stop, within ``timeout`` seconds at most.

    Providers that modelotel created are shut down; providers of the application that it
    attached to are only flushed (the application owns them). Never raises.

    Args:
        timeout: deadline in seconds (default: ``configure(shutdown_timeout=...)``, 5 s).

    Returns:
        True if everything finished in time; False if the deadline cut it short (what was
        still queued is dropped and counted as ``shutdown_timeout``).
    """
    with _lock:
        setup = _setup
        if setup is None or setup.disabled or setup.shut_down:
            return True
        setup.shut_down = True
    deadline = _deadline(timeout, setup)
    ms = deadline * 1000.0
    tasks: list[tuple[str, Callable[[], object]]] = []
    if setup.tracer_provider is not None:
        tasks.append(("traces", setup.tracer_provider.shutdown))
    if setup.logger_provider is not None:
        tasks.append(("logs", setup.logger_provider.shutdown))
    # Readers one by one, not MeterProvider.shutdown(): the provider only knows the readers
    # it was built with, not those added later (a forked child renews its readers).
    for reader in setup.metric_readers:
        tasks.append(("metrics", _bind(reader.shutdown, timeout_millis=ms)))
    for component in setup.foreign_components:  # ours, added to the application's providers
        if component not in setup.metric_readers:
            tasks.append(("processor", component.shutdown))
    for name, provider in setup.attached.items():
        if hasattr(provider, "force_flush"):
            tasks.append((f"flush-{name}", _bind(provider.force_flush, timeout_millis=ms)))
    finished, _ = _run_with_deadline("shutdown", tasks, deadline)
    if not finished:
        counts = _count_unexported(setup)
        _logger.warning(
            "modelotel: shutdown did not finish within %.1f s (is the OTLP collector "
            "reachable?); unexported telemetry was dropped and counted in "
            "ml.telemetry.dropped: %s",
            deadline,
            ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or "nothing",
        )
    return finished


def force_flush(timeout: float | None = None) -> bool:
    """Export what is buffered now, waiting ``timeout`` seconds at most. Never raises.

    Returns:
        True if every flush finished in time and succeeded.
    """
    with _lock:
        setup = _setup
    if setup is None or setup.disabled or setup.shut_down:
        return True
    deadline = _deadline(timeout, setup)
    ms = deadline * 1000.0
    targets = [c for c in (setup.tracer_provider, setup.logger_provider) if c is not None]
    targets += setup.metric_readers  # see shutdown(): not MeterProvider.force_flush()
    targets += [c for c in setup.foreign_components if c not in setup.metric_readers]
    targets += list(setup.attached.values())
    tasks: list[tuple[str, Callable[[], object]]] = [
        ("flush", _bind(c.force_flush, timeout_millis=ms))
        for c in targets
        if hasattr(c, "force_flush")
    ]
    finished, results = _run_with_deadline("flush", tasks, deadline)
    return finished and all(r is not False for r in results)


# --- validation --------------------------------------------------------------------------


def _validate(**kw: Any) -> dict[str, Any]:
    """Check the arguments of ``configure()``; return them normalized (for comparison)."""
    for name in ("service_name", "endpoint"):
        value = kw[name]
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f"modelotel.configure({name}=...) takes a string, got {type(value).__name__}"
            )
        if value is not None and not value.strip():
            raise ValueError(f"modelotel.configure({name}=''): give a non-empty string or None")
    endpoint = kw["endpoint"]
    if endpoint is not None and "://" not in endpoint:
        raise ValueError(
            f"modelotel.configure(endpoint={endpoint!r}): give a URL with a scheme, like "
            "'http://localhost:4318' (OTLP/HTTP) or 'http://localhost:4317' (gRPC)"
        )
    if kw["protocol"] is not None:
        if not isinstance(kw["protocol"], str):
            raise TypeError("modelotel.configure(protocol=...) takes a string")
        kw["protocol"] = _exporters.resolve_protocol("traces", kw["protocol"])
    kw["headers"] = _normalize_headers(kw["headers"])
    attrs = kw["resource_attributes"]
    if attrs is not None:
        if not isinstance(attrs, Mapping) or not all(isinstance(k, str) for k in attrs):
            raise TypeError(
                "modelotel.configure(resource_attributes=...) takes a str-keyed mapping"
            )
        kw["resource_attributes"] = dict(attrs)
    for name in ("traces", "metrics", "logs"):
        if kw[name] is not None and not isinstance(kw[name], bool):
            raise TypeError(f"modelotel.configure({name}=...) takes True, False or None")
    for name in ("export_interval_ms", "export_timeout", "shutdown_timeout"):
        value = kw[name]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"modelotel.configure({name}=...) takes a number")
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"modelotel.configure({name}={value!r}): give a positive number")
        kw[name] = float(value)
    if not isinstance(kw["add_exporters_to_existing"], bool):
        raise TypeError("modelotel.configure(add_exporters_to_existing=...) takes a bool")
    return kw


def _normalize_headers(headers: Mapping[str, str] | str | None) -> dict[str, str] | None:
    if headers is None:
        return None
    if isinstance(headers, str):
        from opentelemetry.util.re import parse_env_headers

        return dict(parse_env_headers(headers, liberal=True))
    if isinstance(headers, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        return dict(headers)
    raise TypeError("modelotel.configure(headers=...) takes a str-to-str mapping or 'k1=v1,k2=v2'")


def _env_shutdown_timeout() -> float:
    raw = os.environ.get(MODELOTEL_SHUTDOWN_TIMEOUT)
    if raw is None or not raw.strip():
        return DEFAULT_SHUTDOWN_TIMEOUT
    try:
        value = float(raw)
        if value > 0 and math.isfinite(value):
            return value
    except ValueError:
        pass
    _safety.health.warn_once(
        "env:" + MODELOTEL_SHUTDOWN_TIMEOUT,
        "modelotel: %s=%r is not a positive number of seconds; using %s",
        MODELOTEL_SHUTDOWN_TIMEOUT,
        raw,
        DEFAULT_SHUTDOWN_TIMEOUT,
    )
    return DEFAULT_SHUTDOWN_TIMEOUT


def _signal_enabled(signal: str, arg: bool | None) -> bool:
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


def _build(args: dict[str, Any]) -> _Setup:
    setup = _Setup(args=args)
    setup.shutdown_timeout = args["shutdown_timeout"] or _env_shutdown_timeout()
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
    if _signal_enabled("metrics", args["metrics"]):
        _try_signal(
            "metrics", lambda: _setup_metrics(setup, resource, factory("metrics"), add_to_existing)
        )
    if _signal_enabled("traces", args["traces"]):
        _try_signal(
            "traces", lambda: _setup_traces(setup, resource, factory("traces"), add_to_existing)
        )
    if _signal_enabled("logs", args["logs"]):
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
    resource = Resource.create(attrs)
    if not resource.attributes.get(_SERVICE_INSTANCE_ID):
        # SDKs before 1.44 have no service-instance detector.
        resource = resource.merge(Resource({_SERVICE_INSTANCE_ID: str(uuid.uuid4())}))
    return resource


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


def _setup_traces(setup: _Setup, resource: Any, make: Callable[[], Any], add: bool) -> None:
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


def _track(setup: _Setup, processor: Any, exporter: Any, *, logs: bool) -> None:
    """Account for every record of the processor (before it is added to a provider)."""
    ledger = _accounting.track(processor, exporter, logs=logs)
    if ledger is not None:
        setup.ledgers.append(ledger)
    else:  # an SDK without the batch processor's internals: its queue counted at the deadline
        _logger.debug("modelotel: this opentelemetry-sdk's %s processor is not accounted for",
                      "log" if logs else "span")


def _new_reader(setup: _Setup, make: Callable[[], Any]) -> Any:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter = _exporters.ForkSafeMetricExporter(make)
    setup.exporters.append(exporter)
    # export_interval_millis=None lets the SDK read OTEL_METRIC_EXPORT_INTERVAL.
    return PeriodicExportingMetricReader(exporter, export_interval_millis=setup.export_interval_ms)


def _setup_metrics(setup: _Setup, resource: Any, make: Callable[[], Any], add: bool) -> None:
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


def _setup_logs(setup: _Setup, resource: Any, make: Callable[[], Any], add: bool) -> None:
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


# --- deadlines ---------------------------------------------------------------------------


def _deadline(timeout: float | None, setup: _Setup) -> float:
    if timeout is None:
        return setup.shutdown_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        _safety.health.warn_once(
            "setup.bad_timeout",
            "modelotel: timeout=%r is not a positive number of seconds; using %s",
            timeout,
            setup.shutdown_timeout,
        )
        return setup.shutdown_timeout
    return float(timeout)


def _bind(fn: Callable[..., object], **kwargs: Any) -> Callable[[], object]:
    def call() -> object:
        return fn(**kwargs)

    return call


def _run_with_deadline(
    what: str, tasks: list[tuple[str, Callable[[], object]]], deadline: float
) -> tuple[bool, list[object]]:
    """Run each task in its own daemon thread; wait for all of them ``deadline`` s at most.

    The SDK's shutdown and flush can block far longer than asked (a hung collector, a
    ``force_flush`` that ignores its timeout). A daemon thread that is still running when the
    deadline passes is left behind: it cannot keep the interpreter from exiting.
    """
    results: list[object] = [None] * len(tasks)
    threads: list[threading.Thread] = []
    for i, (name, fn) in enumerate(tasks):

        def run(i: int = i, fn: Callable[[], object] = fn) -> None:
            try:
                results[i] = fn()
            except Exception as exc:  # an SDK shutdown/flush error counts as False
                results[i] = False
                _logger.debug("modelotel: %s failed", what, exc_info=exc)

        thread = threading.Thread(target=run, name=f"modelotel-{what}-{name}", daemon=True)
        thread.start()
        threads.append(thread)
    end = time.monotonic() + deadline
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    finished = not any(t.is_alive() for t in threads)
    return finished, results


def _count_unexported(setup: _Setup) -> dict[str, int]:
    """The deadline passed: count what is in flight or queued, by reason; export no more."""
    counts: dict[str, int] = {}
    with _safety.guard("setup.shutdown"):
        for ledger in setup.ledgers:
            for reason, n in ledger.cut().items():
                counts[reason] = counts.get(reason, 0) + n
        if not setup.ledgers:  # an SDK whose processors could not be tracked
            for kind, processors in ((A.RECORD_SPAN, setup.span_processors),
                                     (A.RECORD_LOG, setup.log_processors)):
                n = sum(_accounting.queued(p) for p in processors)
                if n:
                    reason = A.dropped_reason(kind, A.STAGE_SHUTDOWN_TIMEOUT)
                    _safety.count_dropped(reason, n)
                    counts[reason] = n
    return counts


# --- process hooks: exit and fork --------------------------------------------------------


def _register_process_hooks() -> None:
    global _hooks_registered
    if _hooks_registered:
        return
    _hooks_registered = True
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        # Registered after the SDK's own at-fork hooks (created with the providers above),
        # so they have already restarted their threads and cleared their queues when ours runs.
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    with _safety.guard("setup.atexit"):
        shutdown()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at fork time
    setup = _setup
    if setup is None or setup.disabled or setup.shut_down:
        return
    with _safety.guard("setup.fork"):
        # The exporter wrappers renew themselves (their own at-fork hooks, lazily).
        _renew_metric_readers(setup)
        _ensure_new_instance_id(setup)
    _state.bump_generation()


class _DropCollectWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Cannot call collect"))


def _renew_metric_readers(setup: _Setup) -> None:
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


def _ensure_new_instance_id(setup: _Setup) -> None:
    """SDK >= 1.44 renews ``service.instance.id`` in a forked child; older ones cannot."""
    for provider in (setup.tracer_provider, setup.meter_provider, setup.logger_provider):
        if provider is not None and not hasattr(provider, "_update_resource"):
            _safety.health.warn_once(
                "setup.fork_instance_id",
                "modelotel: this opentelemetry-sdk cannot renew service.instance.id after "
                "fork; upgrade to opentelemetry-sdk>=1.44",
            )
            return


def _reset_for_tests() -> None:
    """Forget the setup of this process without touching the global providers (tests)."""
    global _setup
    with _lock:
        _setup = None
