"""OTLP exporters for :func:`modelotel.configure`: protocol choice, fork-safe wrappers.

Example:
    >>> from modelotel import _exporters
    >>> _exporters.resolve_protocol("traces", "grpc")
    'grpc'
    >>> exp = _exporters.ForkSafeSpanExporter(
    ...     lambda: _exporters.build_exporter("traces", "http/protobuf", "http://127.0.0.1:4318"))
    >>> exp.endpoint
    'http://127.0.0.1:4318/v1/traces'

The exporters themselves are the stock ``opentelemetry-exporter-otlp`` ones (the span
exporters with the encoder of :mod:`modelotel._span_encoding` in place); they read their
own ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, timeout, compression,
certificates, temporality) and modelotel passes an argument only when the caller of
``configure()`` gave one (argument > environment > the exporter's default).

Each exporter sits inside a *fork-safe wrapper* that the batch processor or metric reader
talks to. After ``os.fork()`` the SDK restarts its worker threads in the child and clears the
inherited span / log queues, but it keeps using the parent's exporter object: an HTTP session
whose pooled keep-alive socket is shared with the parent (two processes writing to one TCP
connection) or a gRPC channel, which gRPC does not support across fork. The wrapper notices
the new process id at the child's first export and builds a fresh exporter there; the
inherited one is left untouched (not used, not closed: closing it could act on the parent's
connection) and only referenced so that its finalizer never runs in the child.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from modelotel import _accounting, _safety, _span_encoding
from modelotel import attributes as A  # noqa: N812 - the project's alias for names

_logger = logging.getLogger("modelotel")

Signal = Literal["traces", "metrics", "logs"]

GRPC: str = "grpc"
HTTP_PROTOBUF: str = "http/protobuf"
PROTOCOLS: tuple[str, ...] = (GRPC, HTTP_PROTOBUF)
#: The OTLP specification's default. Also the fork-friendlier of the two (see module doc).
DEFAULT_PROTOCOL: str = HTTP_PROTOBUF

_SIGNAL_ENV = {"traces": "TRACES", "metrics": "METRICS", "logs": "LOGS"}
_HTTP_PATH = {"traces": "v1/traces", "metrics": "v1/metrics", "logs": "v1/logs"}


def resolve_protocol(signal: Signal, protocol: str | None) -> str:
    """Protocol of one signal: argument > ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`` >
    ``OTEL_EXPORTER_OTLP_PROTOCOL`` > ``http/protobuf``.

    Raises:
        ValueError: the *argument* is not a protocol the Python exporters support.
    """
    if protocol is not None:
        value = protocol.strip().lower()
        if value not in PROTOCOLS:
            raise ValueError(
                f"modelotel.configure(protocol={protocol!r}): use one of {', '.join(PROTOCOLS)}"
            )
        return value
    for var in (
        f"OTEL_EXPORTER_OTLP_{_SIGNAL_ENV[signal]}_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        raw = os.environ.get(var)
        if raw is None or not raw.strip():
            continue
        value = raw.strip().lower()
        if value in PROTOCOLS:
            return value
        _safety.health.warn_once(
            "env:" + var,
            "modelotel: %s=%r is not supported by the Python OTLP exporters (use %s); using %s",
            var,
            raw,
            " or ".join(PROTOCOLS),
            DEFAULT_PROTOCOL,
        )
        return DEFAULT_PROTOCOL
    return DEFAULT_PROTOCOL


def build_exporter(
    signal: Signal,
    protocol: str,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> Any:
    """A stock OTLP exporter for ``signal``; ``None`` arguments are left to the exporter's env.

    ``endpoint`` is a base URL as in ``OTEL_EXPORTER_OTLP_ENDPOINT``: for OTLP/HTTP the signal
    path (``/v1/traces``...) is appended; for gRPC it is used as is.
    """
    kwargs: dict[str, Any] = {}
    if headers is not None:
        kwargs["headers"] = dict(headers)
    if timeout is not None:
        kwargs["timeout"] = timeout
    if protocol == GRPC:
        if endpoint is not None:
            kwargs["endpoint"] = endpoint
        if signal == "traces":
            return _span_encoding.grpc_span_exporter(**kwargs)
        if signal == "metrics":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            return OTLPMetricExporter(**kwargs)
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter(**kwargs)
    if endpoint is not None:
        kwargs["endpoint"] = f"{endpoint.rstrip('/')}/{_HTTP_PATH[signal]}"
    if signal == "traces":
        return _span_encoding.http_span_exporter(**kwargs)
    if signal == "metrics":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HTTPMetricExporter,
        )

        return HTTPMetricExporter(**kwargs)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HTTPLogExporter,
    )

    return HTTPLogExporter(**kwargs)


def describe_endpoint(exporter: Any) -> str:
    """Where an exporter sends to, for log messages (best effort)."""
    endpoint = getattr(exporter, "_endpoint", None)
    return str(endpoint) if endpoint else "the configured endpoint"


class _ForkSafe:
    """Holds the real exporter; rebuilds it in a forked child at the first use there."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._inner: Any = factory()
        self._pid = os.getpid()
        # one lock per process that renews the exporter: a lock that a thread of the parent
        # held at fork time stays held in the child, so the child never takes the parent's
        # (dict.setdefault is atomic: two threads of a child get the same lock)
        self._renew_locks: dict[int, threading.Lock] = {}
        #: Exporters inherited from the parent: kept alive, never used or closed here.
        self._inherited: list[Any] = []
        self._shut_down = False

    @property
    def inner(self) -> Any:
        """The exporter of this process (building it first if we are a forked child)."""
        pid = os.getpid()
        if self._pid != pid:
            with self._renew_locks.setdefault(pid, threading.Lock()):
                if self._pid != pid:
                    self._inherited.append(self._inner)
                    self._inner = self._factory()
                    self._pid = pid
        return self._inner

    @property
    def endpoint(self) -> str:
        return describe_endpoint(self._inner)

    @property
    def is_inherited(self) -> bool:
        """True in a forked child until the first export there builds a fresh exporter."""
        return self._pid != os.getpid()

    def _shutdown_inner(self, **kwargs: Any) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        if self.is_inherited:
            return  # the parent's exporter is the parent's to close
        self._inner.shutdown(**kwargs)


def _release(*batches: Sequence[Any]) -> None:
    """Empty the batch lists once the export is over (the processor never reads them again).

    A failed export leaves the exporter's frames in a reference cycle with the exception it
    caught; those frames, and every caller's frame up to the batch processor's (linked by
    ``f_back``), hold the batch. Without this, every record of a failed batch would wait
    for the next full garbage collection: a whole queue of spans per minute of outage, and
    a long pause when the collection comes. Emptied, the records go at once.
    """
    for batch in batches:
        if type(batch) is list:
            batch.clear()


class _ForkSafeBatchExporter(_ForkSafe):
    """What the span and the log-record exporter share: every batch is accounted for.

    A batch the exporter gives up on is counted as dropped (``<kind>_export_failed``, by
    the kind of each record). With a :class:`~modelotel._accounting.Ledger` (set by
    ``_accounting.track``), each export is registered while in flight, so that the shutdown
    deadline can count it (``<kind>_export_cut``) and nothing is exported after it.
    """

    kind_of: Callable[[Any], str] = staticmethod(_accounting.span_kind)
    ledger: _accounting.Ledger | None = None

    def _export_counted(self, given: Sequence[Any], success: Any, failure: Any) -> Any:
        batch = given
        if any(item is _accounting.GONE for item in batch):  # taken from a frozen queue
            batch = [item for item in batch if item is not _accounting.GONE]
        ledger = self.ledger
        token = None
        if ledger is not None:
            token = ledger.begin(batch)
            if token is None:  # after the shutdown deadline: counted there, never sent
                return failure
        result = failure
        try:
            result = self.inner.export(batch)
        finally:  # an exception counts as a failure; the batch processor logs it, as before
            with _safety.guard("accounting.export"):
                delivered = result is success
                if ledger is not None and token is not None:
                    ledger.end(token, batch, delivered)
                elif not delivered:
                    _accounting.count_dropped(map(self.kind_of, batch),
                                              A.STAGE_EXPORT_FAILED)
            _release(batch, given)
        return result

    def shutdown(self) -> None:
        self._shutdown_inner()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class ForkSafeSpanExporter(_ForkSafeBatchExporter, SpanExporter):
    """A span exporter that rebuilds its OTLP exporter after fork.

    A batch that the exporter gives up on (its retries and timeout spent) is lost: it is
    counted as ``ml.telemetry.dropped{reason=span_export_failed}``.
    """

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result: SpanExportResult = self._export_counted(
            spans, SpanExportResult.SUCCESS, SpanExportResult.FAILURE
        )
        return result


class ForkSafeLogExporter(_ForkSafeBatchExporter, LogRecordExporter):
    """A log-record exporter that rebuilds its OTLP exporter after fork.

    Lost batches count as ``ml.telemetry.dropped`` by record: ``payload_export_failed``,
    ``outcome_export_failed``, ``log_export_failed`` for other records. (Metrics need no
    such count: with cumulative temporality the next successful export carries them.)
    """

    kind_of = staticmethod(_accounting.log_record_kind)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result: LogRecordExportResult = self._export_counted(
            batch, LogRecordExportResult.SUCCESS, LogRecordExportResult.FAILURE
        )
        return result


class ForkSafeMetricExporter(_ForkSafe, MetricExporter):
    """A metric exporter that rebuilds its OTLP exporter after fork.

    Temporality and aggregation preferences are the wrapped exporter's (they come from
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` and friends).
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        _ForkSafe.__init__(self, factory)
        MetricExporter.__init__(
            self,
            preferred_temporality=getattr(self._inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(self._inner, "_preferred_aggregation", None),
        )

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        result: MetricExportResult = self.inner.export(
            metrics_data, timeout_millis=timeout_millis, **kwargs
        )
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._shutdown_inner(timeout_millis=timeout_millis)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis=timeout_millis))
