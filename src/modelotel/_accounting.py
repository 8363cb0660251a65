"""Exact accounting of the export pipelines: each span or log record is delivered or counted.

Example (what ``configure()`` does for each batch processor it builds):

    >>> from opentelemetry.sdk.trace.export import BatchSpanProcessor
    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    >>> from modelotel._accounting import track
    >>> exporter = InMemorySpanExporter()
    >>> processor = BatchSpanProcessor(exporter)
    >>> ledger = track(processor, exporter, logs=False)
    >>> ledger.cut()    # the shutdown deadline passed: count what is still queued / in flight
    {}
    >>> processor.shutdown()

A record handed to a batch processor ends in exactly one of: delivered (the exporter
reported success), or ``ml.telemetry.dropped`` under ``<kind>_<stage>``, where the kind is
``span``, ``payload`` (``ml.prediction.payload`` records), ``outcome``
(``ml.prediction.outcome``) or ``log`` (any other log record), and the stage is:

- ``queue_full``: the queue was full, its oldest record fell out;
- ``export_failed``: the exporter gave up on its batch (retries and timeout spent, or a
  permanent error);
- ``after_shutdown``: it arrived after the processor shut down;
- ``shutdown_timeout``: still queued (or taken from the queue, not yet handed to the
  exporter) when the shutdown deadline passed;
- ``export_cut``: in an export that the shutdown deadline cut short.

Two things in the SDK's batch processor are not exact and are replaced here. Its queue-full
count is taken outside the queue (a length check, then ``appendleft``): two threads at
``max - 1`` both append and one record falls out uncounted; a record popped meanwhile makes
it count a drop that did not happen. :class:`CountingQueue` counts what actually falls out
(each record leaves it by one atomic deque call). And the processor knows nothing of a
deadline: what it has in flight or still queued when ``shutdown()`` gives up is lost
silently; :meth:`Ledger.cut` counts it, and makes sure nothing counted there is exported
(or counted) again later. Its warning for each record that falls out of a full queue is
replaced too (:class:`FullQueueReport`): one a second at most, for the same report.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from modelotel import _safety
from modelotel import attributes as A  # noqa: N812 - the project's alias for names

#: Taken from a frozen queue in place of a record that is no longer there (see ``freeze``).
GONE: Any = object()


def log_record_kind(record: Any) -> str:
    """``payload``, ``outcome`` or ``log``: the kind of a (readable or read-write) log record."""
    name = getattr(getattr(record, "log_record", None), "event_name", None)
    if name == A.EVENT_PREDICTION_PAYLOAD:
        return A.RECORD_PAYLOAD
    if name == A.EVENT_PREDICTION_OUTCOME:
        return A.RECORD_OUTCOME
    return A.RECORD_LOG


def span_kind(record: Any) -> str:
    return A.RECORD_SPAN


def count_dropped(kinds: Iterable[str], stage: str, sign: int = 1) -> dict[str, int]:
    """Count records by kind under ``<kind>_<stage>``; returns ``{reason: n}``."""
    counts: dict[str, int] = {}
    for kind in kinds:
        reason = A.dropped_reason(kind, stage)
        counts[reason] = counts.get(reason, 0) + 1
    with _safety.guard("accounting.count"):
        for reason, n in counts.items():
            _safety.count_dropped(reason, sign * n)
    return counts


_appendleft = collections.deque.appendleft
_pop = collections.deque.pop
_popleft = collections.deque.popleft


class CountingQueue(collections.deque):  # type: ignore[type-arg]
    """The batch processor's queue, counting each record that falls out when it is full.

    The processor appends with ``appendleft`` on the calling threads and its worker takes
    with ``pop``. No lock (a lock here cost ~0.7 us per record): every record leaves the
    deque through exactly one atomic deque call, and whoever makes it owns the record. The
    deque itself is unbounded; after an append that took it past ``max_size`` the appending
    thread pops the oldest records (as the stock bounded deque drops them) and counts them.
    Racing appenders may evict one record more than needed: counted all the same. After
    :meth:`freeze` (the shutdown deadline) nothing stays in, and the worker, which may have
    measured the queue before it was emptied, takes :data:`GONE` instead of raising.
    """

    def __init__(self, max_size: int, kind_of: Callable[[Any], str]) -> None:
        super().__init__()
        self.max_size = max_size
        self._kind_of = kind_of
        self.frozen = False
        #: told how many records fell out after each overflow (:class:`FullQueueReport`)
        self.on_full: Callable[[int], None] | None = None

    def appendleft(self, item: Any) -> None:
        _appendleft(self, item)
        if len(self) > self.max_size or self.frozen:
            self._overflow()

    def pop(self) -> Any:  # type: ignore[override]  # deque.pop takes no index
        try:
            return _pop(self)
        except IndexError:  # emptied by freeze() (or evictions) since the worker measured it
            return GONE

    def _overflow(self) -> None:
        if self.frozen:
            self._drain()
            return
        kinds = []
        while len(self) > self.max_size:
            try:
                victim = _pop(self)
            except IndexError:
                break
            kinds.append(self._kind_of(victim))
        count_dropped(kinds, A.STAGE_QUEUE_FULL)
        on_full = self.on_full
        if on_full is not None and kinds:
            with _safety.guard("accounting.queue_full"):
                on_full(len(kinds))

    def _drain(self) -> dict[str, int]:
        kinds = []
        while True:
            try:
                item = _popleft(self)
            except IndexError:
                break
            kinds.append(self._kind_of(item))
        return count_dropped(kinds, A.STAGE_SHUTDOWN_TIMEOUT)

    def freeze(self) -> dict[str, int]:
        """Empty the queue for good, counting its records as ``shutdown_timeout``."""
        self.frozen = True
        return self._drain()


class Ledger:
    """The accounting of one pipeline: its queue and the exports in flight at its exporter."""

    def __init__(self, kind_of: Callable[[Any], str], queue: CountingQueue | None) -> None:
        self.kind_of = kind_of
        self.queue = queue
        self._lock = threading.Lock()
        self._inflight: dict[int, Sequence[Any]] = {}
        self._abandoned: set[int] = set()
        self._next = 0
        self._cut = False

    def after_fork_in_child(self) -> None:
        """The parent's exports are the parent's: the child starts with none in flight."""
        self._lock = threading.Lock()
        self._inflight = {}
        self._abandoned = set()
        self._cut = False

    def begin(self, batch: Sequence[Any]) -> int | None:
        """Register an export of ``batch``; ``None`` when the deadline passed (then counted)."""
        with self._lock:
            if self._cut:
                count_dropped(map(self.kind_of, batch), A.STAGE_SHUTDOWN_TIMEOUT)
                return None
            token = self._next
            self._next += 1
            self._inflight[token] = batch
            return token

    def end(self, token: int, batch: Sequence[Any], delivered: bool) -> None:
        """Settle an export: a failed one is counted, unless the deadline already counted it."""
        with self._lock:
            abandoned = token in self._abandoned
            self._abandoned.discard(token)
            self._inflight.pop(token, None)
        if abandoned:
            if delivered:  # the process lived on and the collector answered after all
                count_dropped(map(self.kind_of, batch), A.STAGE_EXPORT_CUT, sign=-1)
            return
        if not delivered:
            count_dropped(map(self.kind_of, batch), A.STAGE_EXPORT_FAILED)

    def cut(self) -> dict[str, int]:
        """The shutdown deadline passed: count what is in flight and queued; export no more.

        Returns the counts by reason (for the shutdown warning).
        """
        with self._lock:
            self._cut = True
            inflight = list(self._inflight.items())
            self._abandoned.update(token for token, _ in inflight)
            self._inflight.clear()
        counts = count_dropped((self.kind_of(r) for _, batch in inflight for r in batch),
                        A.STAGE_EXPORT_CUT)
        if self.queue is not None:
            for reason, n in self.queue.freeze().items():
                counts[reason] = counts.get(reason, 0) + n
        return counts


class _LogKindOnEmit:
    """Remembers, per thread, the kind of the log record being emitted to the processor.

    The processor reports a record refused after shutdown through its metrics hook, which
    is not given the record: the hook reads its kind here.
    """

    def __init__(self) -> None:
        self.local = threading.local()

    def wrap(self, on_emit: Callable[[Any], Any]) -> Callable[[Any], Any]:
        local = self.local

        def emit(record: Any) -> Any:
            local.kind = log_record_kind(record)
            try:
                return on_emit(record)
            finally:
                local.kind = None

        return emit

    def kind(self) -> str:
        return getattr(self.local, "kind", None) or A.RECORD_LOG


class CountingProcessorMetrics:
    """Wraps a batch processor's metrics hook so its drops also land in ``ml.telemetry.dropped``.

    ``reasons`` maps the SDK's ``error_type`` (``queue_full``, ``already_shutdown``) to our
    ``ml.telemetry.reason``, or to ``None`` for drops counted elsewhere (a
    :class:`CountingQueue` counts queue-full drops itself). ``reason_of`` (optional) gives
    the reason of an error type at the time of the call (the kind of the record at hand).
    """

    def __init__(
        self,
        inner: Any,
        reasons: dict[str, str | None],
        reason_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self._inner = inner
        self._reasons = dict(reasons)
        self._reason_of = reason_of

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        self._inner.register_queue_size(get_queue_size)

    # This hook is private SDK API and its signatures changed between releases (1.44:
    # drop_items(count), finish_items(count, error); 1.45: drop_items(count, error_type),
    # finish_items(count)). A TypeError here would escape from span.end() into the user's
    # code or stop the export worker, so pass on exactly what the SDK gave us.
    def drop_items(self, count: int, *args: Any, **kwargs: Any) -> None:
        with _safety.guard("setup.count_dropped"):
            error_type = args[0] if args else kwargs.get("error_type", "queue_full")
            if error_type in self._reasons:
                reason = self._reasons[error_type]
            elif self._reason_of is not None:
                reason = self._reason_of(error_type)
            else:
                reason = error_type
            if reason is not None:
                _safety.count_dropped(reason, count)
        self._inner.drop_items(count, *args, **kwargs)

    def finish_items(self, count: int, *args: Any, **kwargs: Any) -> None:
        self._inner.finish_items(count, *args, **kwargs)


#: Seconds between two "Queue full" records handed to the SDK's logger by one queue.
FULL_REPORT_EVERY_S = 1.0


class FullQueueReport:
    """What the batch processor does when its queue overflows, for a :class:`CountingQueue`
    that made the processor's own check never fire: its metrics hook hears of every
    record that fell out, its logger of a full queue at most every
    :data:`FULL_REPORT_EVERY_S` (modelotel's log filter turns that record into its report).

    The processor's own check logs a warning for each record that falls out: a
    ``LogRecord`` per call (~12 us, measured in a loop of instrumented calls with the span
    queue full, against the same loop with room in the queue), paid by the calling thread
    exactly when the process already makes more spans than it can send.
    """

    __slots__ = ("_drop_items", "_exporting", "_logger", "_next")

    def __init__(self, logger: logging.Logger, exporting: str,
                 drop_items: Callable[[int], None]) -> None:
        self._logger = logger
        self._exporting = exporting
        self._drop_items = drop_items
        self._next = 0.0

    def __call__(self, count: int) -> None:
        self._drop_items(count)
        now = time.monotonic()
        if now >= self._next:
            self._next = now + FULL_REPORT_EVERY_S
            self._logger.warning("Queue full, dropping %s.", self._exporting)


def track(processor: Any, exporter: Any, *, logs: bool) -> Ledger | None:
    """Account for every record of a batch span / log-record processor and its exporter.

    Installs a :class:`CountingQueue` in the processor (before it gets any record: call
    this before adding it to a provider), chains onto its metrics hook for records refused
    after shutdown, and hands the exporter wrapper its :class:`Ledger`. Returns None (and
    changes nothing) on SDK versions whose processor has none of these.
    """
    batch = getattr(processor, "_batch_processor", None)
    hook = getattr(batch, "_metrics", None)
    old = getattr(batch, "_queue", None)
    if batch is None or hook is None or not hasattr(hook, "drop_items"):
        return None
    if not isinstance(old, collections.deque) or old.maxlen is None or len(old):
        return None
    kind_of = log_record_kind if logs else span_kind
    queue = CountingQueue(old.maxlen, kind_of)
    batch._queue = queue
    if logs:
        current = _LogKindOnEmit()
        processor.on_emit = current.wrap(processor.on_emit)
        kind: Callable[[], str] = current.kind
    else:

        def kind() -> str:
            return A.RECORD_SPAN

    def reason_of(error_type: str) -> str:
        stage = A.STAGE_AFTER_SHUTDOWN if error_type == "already_shutdown" else error_type
        return A.dropped_reason(kind(), stage)

    metrics = CountingProcessorMetrics(hook, {"queue_full": None}, reason_of)
    batch._metrics = metrics
    if type(getattr(batch, "_max_queue_size", None)) is int:
        # the processor checks `len(queue) == _max_queue_size` before each append; the
        # queue never holds more than max_size for longer than one append, so above that
        # the check stays quiet and the queue reports its overflows itself (FullQueueReport)
        queue.on_full = FullQueueReport(logging.getLogger(type(batch).__module__),
                                        "Log" if logs else "Span", metrics.drop_items)
        batch._max_queue_size = old.maxlen + 1
    ledger = Ledger(kind_of, queue)
    exporter.ledger = ledger
    return ledger


def queued(processor: Any) -> int:
    """How many records wait in a batch processor's queue (0 when not observable)."""
    batch = getattr(processor, "_batch_processor", None)
    queue = getattr(batch, "_queue", None)
    try:
        return len(queue) if queue is not None else 0
    except TypeError:
        return 0
