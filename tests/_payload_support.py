"""In-memory OTel providers and fake calls for the payload and outcome tests.

Example:
    >>> with Sink() as sink:                           # doctest: +SKIP
    ...     hook(fake_call(inputs=[1, 2], outputs=[0]))
    ...     sink.logs()
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import warnings
from collections.abc import Callable
from types import SimpleNamespace, TracebackType
from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modelotel import attributes as tn
from modelotel._runtime import runtime
from modelotel._types import MISSING
from modelotel.testing import drain

_ids = itertools.count(1)


class Sink:
    """Installs in-memory tracer, meter and logger providers into modelotel's runtime."""

    def __init__(self) -> None:
        self.span_exporter = InMemorySpanExporter()
        self.tp = TracerProvider()
        self.tp.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.reader = InMemoryMetricReader()
        self.mp = MeterProvider(metric_readers=[self.reader])
        self.log_exporter = InMemoryLogRecordExporter()
        self.lp = LoggerProvider()
        self.lp.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        self.logger = self.lp.get_logger(tn.SCOPE_NAME)
        self.tracer = self.tp.get_tracer(tn.SCOPE_NAME)
        self._saved: Any = None

    def __enter__(self) -> Sink:
        self._saved = runtime.providers()
        runtime.set_providers(self.tp, self.mp, self.lp)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        runtime.set_providers(*self._saved)
        self.tp.shutdown()
        self.mp.shutdown()
        self.lp.shutdown()

    def logs(self, event: str | None = None) -> list[Any]:
        drain()  # payload records are finished on the payload worker
        recs = [r.log_record for r in self.log_exporter.get_finished_logs()]
        return [r for r in recs if event is None or r.event_name == event]

    def otlp_bytes(self) -> bytes:
        """Every exported log record, encoded as the OTLP exporter would send it."""
        return encode_logs(list(self.log_exporter.get_finished_logs())).SerializeToString()

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out.extend(m.data.data_points)
        return out

    def value(self, name: str, **attrs: Any) -> Any:
        """Value (histograms: (sum, count)) of the one point of ``name`` matching ``attrs``."""
        pts = [
            p for p in self.points(name) if all(p.attributes.get(k) == v for k, v in attrs.items())
        ]
        assert len(pts) == 1, (name, attrs, pts)
        p = pts[0]
        return (p.sum, p.count) if isinstance(p, HistogramDataPoint) else p.value


def fake_call(
    *,
    inputs: Any = MISSING,
    outputs: Any = MISSING,
    error: BaseException | None = None,
    checks: list[str] | None = None,
    pid: str | None = None,
    span: Any = None,
    logger: Any = None,
) -> SimpleNamespace:
    """A stand-in for an ended prediction with the fields the payload part reads; ``logger``
    is where :func:`run` makes the part log it."""
    attrs: dict[str, Any] = {}
    return SimpleNamespace(
        prediction_id=pid
        if pid is not None
        else "%016x" % (next(_ids) * 0x9E3779B97F4A7C15 % (1 << 64)),
        inputs=inputs,
        outputs=outputs,
        error=error,
        checks_fired=list(checks or []),
        span=span,
        monitor=SimpleNamespace(logger=logger),
        span_attributes=attrs,
        set_attribute=attrs.__setitem__,
    )


def run(part: Any, call: SimpleNamespace) -> None:
    """Feed one fake prediction to a payload part (``part.end``), logging to the call's logger."""
    logger = call.monitor.logger
    if logger is not None:
        part._logger = lambda: logger
    part.end(call)
    drain()  # the worker finishes the record: read it (and its counters) after this


def no_logger() -> Any:
    """The logger of a payload part whose records go to the fake call's logger (see run)."""
    raise AssertionError("a payload part built for a test logged without a logger")


def in_child(body: Callable[[], object], alarm_s: int = 10) -> int:
    """Run ``body`` in a forked child; its exit code: 0 when it returned something truthy,
    2 when not, 1 when it raised (and SIGALRM's after ``alarm_s``: a deadlock fails)."""
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads (pytest's, the SDK's)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            signal.alarm(alarm_s)
            code = 0 if body() else 2
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
