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

Payload records are finished by modelotel's payload worker after their call returned
(:mod:`modelotel._payload.worker`): :func:`shutdown` and :func:`force_flush` first wait for
the records it has queued, within the same deadline, and only then flush the logger
provider; records still queued when a shutdown's deadline passes are counted
(``payload_worker_shutdown_timeout``).

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
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from modelotel import _accounting, _exporters, _instruments, _providers, _safety
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._payload.worker import defer_exit_drain, drain_payloads, finish_payloads
from modelotel._runtime import runtime

__all__ = ["configure", "force_flush", "shutdown"]

_logger = logging.getLogger("modelotel")

class _Configured:
    """What ``configure()`` did in this process (one, in the runtime's stores)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.setup: _providers.Setup | None = None
        self.at_exit = False

    def reset(self) -> None:
        """Nothing: the providers ``configure()`` installed stay (they are the process's)."""

    def after_fork(self) -> None:
        self.lock = threading.Lock()  # a parent thread may have held it at fork time
        setup = self.setup
        if setup is None or setup.disabled or setup.shut_down:
            return
        with _safety.guard("setup.fork"):
            # the exporter wrappers renew themselves at their first export here
            for ledger in setup.ledgers:
                ledger.after_fork_in_child()
            _providers.renew_metric_readers(setup)
        runtime.bump_generation()


def _configured() -> _Configured:
    return runtime.store("setup", _Configured)


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
    done = _configured()
    with done.lock:
        if done.setup is not None:
            if done.setup.args == args:
                _logger.debug("modelotel: configure() was already called; nothing to do")
            else:
                _safety.health.warn_once(
                    "setup.configure_again",
                    "modelotel: configure() was already called in this process; the new "
                    "arguments are ignored (OpenTelemetry providers can be set only once)",
                )
            return
        runtime.reload_settings()  # the environment as it is now, also for the models
        done.setup = _providers.build(
            args, args["shutdown_timeout"] or runtime.settings.shutdown_timeout
        )
        if not done.at_exit:
            done.at_exit = True
            atexit.register(_at_exit)
            defer_exit_drain()  # _at_exit's shutdown() drains the payload worker
    # Monitors built before configure() hold tracers / meters of the API's proxies, which
    # forward to the new providers anyway; a new generation lets them take the SDK's own
    # objects directly (one indirection less per call).
    runtime.bump_generation()
    _instruments.ensure()


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
    done = _configured()
    with done.lock:
        setup = done.setup
        active = not (setup is None or setup.disabled or setup.shut_down)
        if setup is not None and active:
            setup.shut_down = True
    deadline = _deadline(timeout, setup)
    end = time.monotonic() + deadline
    # Payload records first: the worker emits them into the logger provider shut down below.
    drained, cut = finish_payloads(deadline)
    if setup is None or not active:
        return drained
    deadline = max(end - time.monotonic(), 0.001)
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
    finished = finished and drained
    if not finished:
        counts = _count_unexported(setup)
        if cut:
            counts[A.REASON_PAYLOAD_WORKER_SHUTDOWN_TIMEOUT] = cut
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
    setup = _configured().setup
    deadline = _deadline(timeout, setup)
    end = time.monotonic() + deadline
    # Records queued for the payload worker reach the logger provider before it flushes.
    drained = drain_payloads(deadline)
    if setup is None or setup.disabled or setup.shut_down:
        return drained
    deadline = max(end - time.monotonic(), 0.001)
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
    return drained and finished and all(r is not False for r in results)


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


# --- deadlines ---------------------------------------------------------------------------


def _deadline(timeout: float | None, setup: _providers.Setup | None) -> float:
    default = setup.shutdown_timeout if setup is not None else runtime.settings.shutdown_timeout
    if timeout is None:
        return default
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        _safety.health.warn_once(
            "setup.bad_timeout",
            "modelotel: timeout=%r is not a positive number of seconds; using %s",
            timeout,
            default,
        )
        return default
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


def _count_unexported(setup: _providers.Setup) -> dict[str, int]:
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


def _at_exit() -> None:
    with _safety.guard("setup.atexit"):
        shutdown()


