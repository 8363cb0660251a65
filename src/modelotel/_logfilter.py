"""One clear log line now and then instead of a stack trace per failed export.

Example:
    >>> from modelotel import _logfilter
    >>> report = _logfilter.install(endpoints=["http://127.0.0.1:4318"])
    >>> _logfilter.installed(), report.endpoints
    (True, ('http://127.0.0.1:4318',))
    >>> _logfilter.uninstall()

When the collector is down, the OpenTelemetry SDK logs on every export attempt: a warning per
retry, an error per dropped batch, sometimes with a traceback ("Exception while exporting
Span."), plus "Queue full, dropping Span." when the buffer overflows. Its own
``DuplicateFilter`` only drops *identical consecutive* records within 20 s, so a service with
three signals still gets several lines (and tracebacks) a minute for as long as the outage
lasts, and users end up silencing the ``opentelemetry`` logger altogether.

:func:`install` puts one :class:`ExportTroubleFilter` on the loggers that the exporters and
batch processors of the installed SDK actually log to (a logging filter applies only to the
logger it is attached to, not to its children, so each is named here). The first
export-trouble record of a window is rewritten into one WARNING that says what is happening
and where (no traceback); the others of that window are suppressed and counted, and the next
report says how many were. Records that are not about exporting pass unchanged.

"Queue full" is a different story: the batch processor's queue overflowed because the process
makes spans (or payload records) faster than one export thread sends them. With no failed
export seen in the last window, the collector is fine and the report says so: the queue is
full at this call rate; raise ``OTEL_BSP_MAX_QUEUE_SIZE`` (``OTEL_BLRP_MAX_QUEUE_SIZE`` for
log records) or sample traces. After a failed export it is reported as export trouble.
Both kinds have their own window, so one does not hide the other.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable

#: Seconds between two reports of export trouble (tests lower it).
INTERVAL_S: float = 60.0

#: Loggers of opentelemetry-sdk / opentelemetry-exporter-otlp (1.3x-1.45) that log per failed
#: export. Checked against the installed sources: the gRPC mixin logs to ``...grpc.exporter``,
#: the HTTP exporters pass their module logger to the shared HTTP client, the batch processor
#: of spans and logs lives in ``sdk._shared_internal`` (``sdk.trace.export`` and
#: ``sdk._logs._internal.export`` in older releases), the metric reader in
#: ``sdk.metrics._internal.export``.
LOGGER_NAMES: tuple[str, ...] = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.http.transport._requests",
    "opentelemetry.exporter.http.transport._urllib3",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk._logs._internal.export",
    "opentelemetry.sdk.metrics._internal.export",
)

# Message templates (``record.msg``, before %-formatting) that mean "an export failed or
# telemetry was dropped because of it". Prefix match; everything else passes untouched.
_TROUBLE_PREFIXES: tuple[str, ...] = (
    "Failed to export",
    "Transient error",
    "Exception while exporting",
    "Queue full",
    "Metric collection timed out",
    "Shutdown in progress, aborting retry",
    "Exporter already shutdown",
    "OTLP client already shutdown",
    "Dropping span batch",
    "Dropping log batch",
    "Dropping metric batch",
)

_REPORT = (
    "modelotel: cannot export telemetry to the OTLP collector at %s (%s). Telemetry is kept "
    "in a bounded in-memory buffer and retried; what does not fit is dropped and counted in "
    "ml.telemetry.dropped. This message repeats at most every %.0f s%s."
)

_QUEUE_FULL_REPORT = (
    "modelotel: the OpenTelemetry SDK's %s queue is full (%s items): this process makes %s "
    "faster than its export thread sends them, at this call rate; the collector is not "
    "reporting errors. The overflow is dropped. Raise %s, or sample (OTEL_TRACES_SAMPLER="
    "parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG, or a lower payload_sample_rate). "
    "This message repeats at most every %.0f s%s."
)

#: what the batch processor's ``%s`` names (``self._exporting``) -> (plural, queue variable)
_QUEUES = {
    "Span": ("spans", "OTEL_BSP_MAX_QUEUE_SIZE"),
    "Log": ("log records", "OTEL_BLRP_MAX_QUEUE_SIZE"),
}

_MAX_CAUSE_CHARS = 300


class ExportTroubleFilter(logging.Filter):
    """Rate-limits export-failure records of the OTel SDK to one rewritten line per window.

    One instance is shared by all the loggers it is attached to, so three signals failing
    at once still make one line per window. Thread-safe; never raises (a logging filter
    that raises would break the SDK's worker thread).
    """

    def __init__(self, endpoints: Iterable[str] = ()) -> None:
        super().__init__()
        self.endpoints: tuple[str, ...] = tuple(endpoints)
        self.suppressed = 0  # records swallowed since the last report (both kinds)
        self.reported = 0  # reports let through so far
        self._next_report = {False: 0.0, True: 0.0}  # by kind: queue full at this rate or not
        self._suppressed = {False: 0, True: 0}
        self._last_failure = -INTERVAL_S - 1.0  # monotonic time of the last failed export
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if record.levelno < logging.WARNING or not _is_trouble(record):
                return True
            now = time.monotonic()
            queue = _is_queue_full(record)
            with self._lock:
                if not queue:
                    self._last_failure = now
                # a full queue right after failed exports is the collector's trouble
                rate = queue and now - self._last_failure > INTERVAL_S
                if now < self._next_report[rate]:
                    self._suppressed[rate] += 1
                    self.suppressed += 1
                    return False
                self._next_report[rate] = now + INTERVAL_S
                suppressed, self._suppressed[rate] = self._suppressed[rate], 0
                self.suppressed -= suppressed
                self.reported += 1
            if rate:
                _rewrite_queue_full(record, suppressed)
            else:
                self._rewrite(record, suppressed)
        except Exception:  # noqa: BLE001 - a filter must never break the SDK's logging call
            return True
        return True

    def _rewrite(self, record: logging.LogRecord, suppressed: int) -> None:
        cause = record.getMessage().splitlines()[0] if record.msg else "unknown error"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            cause = f"{cause} {type(exc).__name__}: {exc}"
        if len(cause) > _MAX_CAUSE_CHARS:
            cause = cause[: _MAX_CAUSE_CHARS - 3] + "..."
        where = ", ".join(self.endpoints) if self.endpoints else "the configured endpoint"
        tail = (
            f"; {suppressed} similar messages suppressed since the last one" if suppressed else ""
        )
        record.msg = _REPORT
        record.args = (where, cause, INTERVAL_S, tail)
        record.levelno = logging.WARNING
        record.levelname = logging.getLevelName(logging.WARNING)
        # No traceback: the cause is in the message; a stack per export is the noise we remove.
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None


def _is_queue_full(record: logging.LogRecord) -> bool:
    msg = record.msg
    return isinstance(msg, str) and msg.startswith("Queue full")


def _rewrite_queue_full(record: logging.LogRecord, suppressed: int) -> None:
    what = record.args[0] if isinstance(record.args, tuple) and record.args else "Span"
    plural, variable = _QUEUES.get(str(what), (f"{what} items", "the processor's queue size"))
    size = os.environ.get(variable, "").strip() or "2048"
    tail = f"; {suppressed} similar messages suppressed since the last one" if suppressed else ""
    record.msg = _QUEUE_FULL_REPORT
    record.args = (str(what).lower(), size, plural, variable, INTERVAL_S, tail)
    record.levelno = logging.WARNING
    record.levelname = logging.getLevelName(logging.WARNING)
    record.exc_info = None
    record.exc_text = None
    record.stack_info = None


def _is_trouble(record: logging.LogRecord) -> bool:
    msg = record.msg
    return isinstance(msg, str) and msg.startswith(_TROUBLE_PREFIXES)


_filter: ExportTroubleFilter | None = None
_install_lock = threading.Lock()


def install(endpoints: Iterable[str] = ()) -> ExportTroubleFilter:
    """Attach the shared filter to the SDK's export loggers (idempotent); returns it.

    A second call only updates the endpoints named in the report.
    """
    global _filter
    with _install_lock:
        if _filter is None:
            _filter = ExportTroubleFilter(endpoints)
            for name in LOGGER_NAMES:
                logging.getLogger(name).addFilter(_filter)
        else:
            _filter.endpoints = tuple(endpoints) or _filter.endpoints
        return _filter


def uninstall() -> None:
    """Remove the filter from every logger (tests)."""
    global _filter
    with _install_lock:
        if _filter is not None:
            for name in LOGGER_NAMES:
                logging.getLogger(name).removeFilter(_filter)
        _filter = None


def installed() -> bool:
    """Whether :func:`install` has run (and :func:`uninstall` has not since)."""
    return _filter is not None
