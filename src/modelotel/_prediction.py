"""One prediction's lifecycle: start, then stop (success) or fail.

Example:
    >>> from modelotel._prediction import start_prediction
    >>> from modelotel._monitor import get_monitor
    >>> from modelotel._options import model_config
    >>> p = start_prediction(get_monitor(model_config(model="doc")), [[1.0, 2.0]])
    >>> p.stop([0.5])
    >>> p.outputs
    [0.5]

The wrappers of :mod:`modelotel._instrument` and the ``observe()`` block of
:mod:`modelotel._observe` are thin shells around this object: :func:`start_prediction`
before the user's function runs, :meth:`Prediction.stop` or :meth:`Prediction.fail` after.
Every method runs the telemetry inside the guard's semantics (any ``Exception`` is
swallowed and counted through :func:`modelotel._safety.record_error`); the hot steps use
``try/except`` + ``record_error`` directly because a ``with guard(...)`` block costs a few
hundred nanoseconds per step. Nothing here raises into the user's code and nothing
replaces the user's result or exception.

When a prediction ends (the contract with its parts):

1. duration, outcome and ``error.type`` on the span and the serving metrics; a prediction
   ended by a ``BaseException`` that is not an ``Exception`` (``asyncio.CancelledError``
   from a client that disconnected, ``KeyboardInterrupt``, ``SystemExit``) is not a failed
   prediction: its span gets ``error.type`` but keeps status UNSET and no ``exception``
   event, and it counts in ``ml.prediction.calls`` and the duration without ``error.type``,
   not in ``ml.prediction.errors``;
2. every part of the model (statistics, outcomes, payloads: :class:`modelotel._types.Part`)
   takes what it needs through its ``end``, each in its own guard, in that order (the
   payload decision sees the checks the statistics fired), with the prediction's span still
   the current span for function calls (log records emitted there are linked to it);
   skipped for a *secondary* call (a ``wrap()``-ed model's method other than its primary
   one, see :func:`start_prediction`);
3. ``ml.checks.fired`` from :attr:`Prediction.checks_fired`, then the span ends;
4. :func:`last_prediction_id` is set to this prediction's id (primary calls, not for a
   stream closed early), so that the caller sees the id of the call that returned to it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode

from modelotel import _instruments
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._monitor import ModelMonitor
from modelotel._payload.redact import exception_text
from modelotel._runtime import runtime
from modelotel._safety import count_skipped, record_error
from modelotel._types import MISSING, Ended
from modelotel.stats.containers import is_container
from modelotel.stats.frames import FRAME_TYPES, frame_shape
from modelotel.stats.image import layout
from modelotel.stats.text import join_stream

#: Span classes already checked to be ``Span`` subclasses (garbage from a tracer is counted).
_SPAN_TYPES: set[type] = set()

_getrandbits = random.getrandbits
_perf_counter_ns = time.perf_counter_ns
_set_span_in_context = trace.set_span_in_context
_attach = otel_context.attach
_detach = otel_context.detach

#: The prediction id of the latest primary call started in the current context.
_LAST_PREDICTION_ID: ContextVar[str] = ContextVar("modelotel.last_prediction_id", default="")
_set_last_prediction_id = _LAST_PREDICTION_ID.set
_NO_ENDS: tuple[()] = ()

#: Most items of one stream kept as its outputs. Not ``row_cap``: str items (tokens) are
#: joined into one text, and a text cut at a batch's row sample would misstate its length.
STREAM_ITEMS = 10_000


def last_prediction_id() -> str | None:
    """The prediction id of the instrumented predict call that last returned in this context.

    Example:
        >>> import modelotel
        >>> @modelotel.instrument(model="churn", version="3")
        ... def predict(X):
        ...     return [0 for _ in X]
        >>> labels = predict([[1.0, 2.0]])
        >>> pid = modelotel.last_prediction_id()     # keep it with the request ...
        >>> modelotel.record_outcome(pid, [1], model="churn", version="3")   # ... label later

    The id is the call's ``ml.prediction.id`` (on its span and payload record), the key
    that :func:`modelotel.record_outcome` joins a label on. "This context" is the
    calling thread, or the asyncio task: a call awaited directly counts, a call run in
    another task (``asyncio.create_task``) or thread does not.

    It is set twice per call: when the call starts (so the predict function itself can
    read its own id) and again when the call returns or raises, in the caller's context.
    So after ``outer(X)``, where ``outer`` calls another instrumented model, it is the id
    of ``outer``'s call, the one that returned to the caller (inside ``outer``, after the
    inner call, it is the inner call's id). A generator or async generator sets it when
    the stream starts and again when it is exhausted or raises; a stream closed early
    (``break``, ``close()``) leaves it as it is. A ``wrap()``-ed model's secondary methods
    (``predict_proba`` when ``predict`` is the primary one) do not change it: it stays
    the id of the call whose outputs were kept for outcomes. With ``modelotel.observe``
    use ``call.prediction_id`` (the block sets it too, at its start and its end).

    Calls made while modelotel is disabled or suppressed do not change it.

    Returns:
        16 hex digits, or None when no instrumented call was made in this context yet.
    """
    return _LAST_PREDICTION_ID.get() or None


def _record_exception(
    span: Span, error: BaseException, error_type: str | None, payload: object
) -> None:
    """Add the standard ``exception`` event to ``span``, without the user's text by default.

    ``span.record_exception`` would export the message and the stack trace, which often quote
    the inputs (``could not convert 'jane@example.com' to float``): a leak through a channel
    that the payload redaction never sees. So the event carries ``exception.type`` only,
    unless payload capture is on for this model (``payload``, its config: the user opted in
    to exporting data); then the message and the stack trace are added after the model's
    payload redaction, each capped at 1024 characters. When the redaction cannot vouch for
    them (field rules or a hook of the user's, which free text cannot pass through, or any
    failure) the type alone is sent: fail closed.
    """
    attributes: dict[str, str] = {A.EXCEPTION_TYPE: error_type or type(error).__qualname__}
    if payload is not None:
        texts = exception_text(payload, error)
        if texts is not None:
            attributes[A.EXCEPTION_MESSAGE], attributes[A.EXCEPTION_STACKTRACE] = texts
    span.add_event(A.EVENT_EXCEPTION, attributes)


def _new_prediction_id() -> str:
    """A random 64-bit id as 16 hex digits (cheap; unique enough to join outcomes)."""
    return f"{_getrandbits(64):016x}"


def _as_count(value: object) -> int | None:
    """A dimension as a non-negative int, or None (unknown dims, symbolic shapes)."""
    try:
        n = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):  # None, "?", nan, inf
        return None
    return n if n >= 0 else None


def _input_shape(inputs: object) -> tuple[int | None, int | None]:
    """(rows, features) of an input, from ``.shape`` or ``len()``; (None, None) if unknown.

    Only reads ``.shape`` (numpy, pandas, torch, tensorflow, polars), the length of a
    list / tuple or ``num_row()`` / ``num_col()`` of a DMatrix or Pool: never copies.
    Those reads can run user code (a ``shape`` property, a ``__getattr__`` that raises
    ``KeyError``, a list subclass's ``__len__``): whatever it raises is a counted skip,
    and the span still starts, without the two attributes.
    """
    if inputs is MISSING or inputs is None:
        return None, None
    try:
        return _read_shape(inputs)
    except Exception:  # noqa: BLE001 - the user's object misbehaved: bad input, not our bug
        count_skipped(A.REASON_INPUT_SHAPE)
        return None, None


def _read_shape(inputs: object) -> tuple[int | None, int | None]:
    if type(inputs) in FRAME_TYPES:
        got = frame_shape(inputs)
        if got is not None:
            return got
    shape = getattr(inputs, "shape", None)
    if type(shape) is tuple:  # numpy, pandas: a plain tuple of ints (the common case, fast)
        n = len(shape)
        if n == 0:
            return 1, None
        rows = shape[0]
        # only a 2-D input has features along axis 1 (of (N,3,32,32) images it is channels)
        features = shape[1] if n == 2 else None
        if type(rows) is int and (features is None or type(features) is int):
            if n == 3 and _one_image(shape):
                return 1, None
            return rows, features
    if shape is not None and hasattr(shape, "__len__") and not isinstance(shape, (str, bytes)):
        # torch.Size, TensorShape, ...; a string is no shape ("3x2" is not 3 rows)
        dims = tuple(shape)
        if len(dims) == 0:
            return 1, None
        if len(dims) == 3 and _one_image(dims):
            return 1, None
        return _as_count(dims[0]), _as_count(dims[1]) if len(dims) == 2 else None
    if isinstance(inputs, (list, tuple)):
        n = len(inputs)
        if n and isinstance(inputs[0], (list, tuple)):
            return n, len(inputs[0])
        return n, None
    if is_container(inputs):  # an XGBoost DMatrix, a CatBoost Pool: no .shape of their own
        rows, cols = inputs.num_row(), inputs.num_col()  # type: ignore[attr-defined]
        return _as_count(rows), _as_count(cols)
    return None, None


def _one_image(dims: tuple[Any, ...]) -> bool:
    """True for the shape of one (C,H,W) or (H,W,C) image, one row for the statistics."""
    return all(type(d) is int for d in dims) and layout(dims, True) is not None


class Prediction:
    """One prediction: made by :func:`start_prediction`, ended once by :meth:`stop` or :meth:`fail`.

    What ``modelotel.observe(...)`` hands to its block, and what the parts of a model see
    when it ends (:class:`modelotel._types.Ended`).

    Example:
        >>> import modelotel
        >>> with modelotel.observe("churn", version="3") as prediction:
        ...     prediction.record_inputs([[1.0, 2.0]])
        ...     prediction.record_outputs([0.5])
        >>> len(prediction.prediction_id)
        16

    Attributes:
        monitor: the model's :class:`~modelotel._monitor.ModelMonitor`.
        prediction_id: unique id of this prediction (16 hex digits), also on the span.
        span: the prediction's span (non-recording when not sampled).
        inputs: the model input (``input_arg``), or what ``record_inputs`` gave; ``MISSING``.
        outputs: the return value, or what ``record_outputs`` gave; ``MISSING`` for streams.
        error: the exception that ended the prediction, or None. Only an ``Exception``
            makes it a failed prediction; a ``BaseException`` that is not one
            (``asyncio.CancelledError``, ``KeyboardInterrupt``, ``SystemExit``,
            ``GeneratorExit``) is kept here too, but only interrupted it.
        checks_fired: names of silent-failure checks that fired (the parts append).
    """

    # No __slots__: class-level defaults mean a prediction only sets what differs (cheaper).
    monitor: ModelMonitor
    prediction_id: str = ""
    span: Span = INVALID_SPAN
    inputs: Any = MISSING
    outputs: Any = MISSING
    error: BaseException | None = None
    checks_fired: list[str]
    #: the ``end`` of each part this prediction feeds: None for the model's parts (looked up
    #: when it ends), none for a secondary call (spans and serving metrics only)
    _ends: tuple[Callable[[Ended], None], ...] | None = None
    stream_items: int | None = None
    closed_early: bool = False
    #: a stream's items kept for its outputs (at most :data:`STREAM_ITEMS`), None before the
    #: first
    _items: list[Any] | None = None
    _first_ns: int = 0
    duration_s: float = 0.0
    rows: int | None = None
    features: int | None = None
    _shape_of: Any = MISSING
    _start_ns: int = 0
    _t0_ns: int = 0
    _token: object = None
    _done: bool = False

    # ------------------------------------------------------------------ context
    def attach(self) -> object:
        """Make this call's span the current span; returns the token for :meth:`detach`."""
        try:
            return _attach(_set_span_in_context(self.span))
        except Exception as exc:  # noqa: BLE001
            record_error("call.attach", exc)
            return None

    @staticmethod
    def detach(token: object) -> None:
        """Undo :meth:`attach` (no-op for a None token)."""
        if token is None:
            return
        try:
            _detach(token)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            record_error("call.detach", exc)

    # ------------------------------------------------------------------ user API
    def set_attribute(self, key: str, value: Any) -> None:
        """Set an attribute on the call's span (ignored when not sampled). Never raises."""
        try:
            self.span.set_attribute(key, value)
        except Exception as exc:  # noqa: BLE001
            record_error("call.set_attribute", exc)

    def record_inputs(self, inputs: Any) -> None:
        """Tell modelotel what the model input of this call is (for ``observe``)."""
        self.inputs = inputs

    def record_outputs(self, outputs: Any) -> None:
        """Tell modelotel what the model output of this call is (for ``observe``)."""
        self.outputs = outputs

    def add_item(self, item: Any) -> None:
        """A stream yielded ``item``: the first one's time is the time to first item; the
        items (up to :data:`STREAM_ITEMS`) become the stream's outputs. Never raises."""
        items = self._items
        if items is None:
            self._first_ns = _perf_counter_ns()
            self._items = [item]
        elif len(items) < STREAM_ITEMS:
            items.append(item)

    # ------------------------------------------------------------------ lifecycle
    def stop(self, outputs: Any = MISSING) -> None:
        """End the prediction as a success (with its ``outputs``). Idempotent; never raises."""
        self._end(_perf_counter_ns(), outputs, None)

    def fail(self, error: BaseException) -> None:
        """End the prediction with the ``error`` that ended it. Idempotent; never raises.

        Only an ``Exception`` fails the prediction; any other ``BaseException``
        (``asyncio.CancelledError``, ``KeyboardInterrupt``, ``GeneratorExit``) interrupts it.
        """
        self._end(_perf_counter_ns(), MISSING, error)

    def _end(self, end_ns: int, outputs: Any, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        if outputs is not MISSING:
            self.outputs = outputs
        elif self._items is not None:
            try:
                self.outputs = join_stream(self._items)
            except Exception as exc:  # noqa: BLE001
                record_error("call.stream_outputs", exc)
        if error is not None:
            self.error = error
        error = self.error
        mon = self.monitor
        span = self.span
        error_type: str | None = None
        failure: str | None = None  # error_type when the call failed (an Exception)
        if error is not None:
            error_type = type(error).__qualname__
            # Only an Exception is a failed prediction. CancelledError (a client that went
            # away), KeyboardInterrupt, SystemExit, GeneratorExit interrupt the call: error.type
            # on the span says so, but no ERROR status, no ml.prediction.errors, no error.type
            # on the duration (a cancelled request must not feed the error-rate alert).
            if isinstance(error, Exception):
                failure = error_type

        # 1. duration, outcome, error.type on the metrics and the span
        recording = False
        extra: dict[str, Any] = {}
        try:
            seconds = (end_ns - self._start_ns) / 1e9
            if seconds < 0:  # time can go backwards (suspended VMs)
                seconds = 0.0
            self.duration_s = seconds
            recording = span.is_recording()
            inputs = self.inputs
            if inputs is not self._shape_of:  # observe(): record_inputs() came after the start
                self._shape_of = inputs
                self.rows, self.features = _input_shape(inputs)
                if self.rows is not None:
                    extra[A.ML_INPUT_ROWS] = self.rows
                if self.features is not None:
                    extra[A.ML_INPUT_FEATURES] = self.features
            rows = self.rows
            mon.serving.record(seconds, rows if rows is not None and rows >= 0 else 0, failure,
                               span if recording else None)
        except Exception as exc:  # noqa: BLE001
            record_error("call.metrics", exc)
        if self._items is not None:
            try:
                first = max(self._first_ns - self._start_ns, 0) / 1e9
                extra[A.ML_STREAM_TIME_TO_FIRST_ITEM] = first
                _record_first_item(mon, first, failure)
            except Exception as exc:  # noqa: BLE001
                record_error("call.time_to_first_item", exc)
        if recording:
            try:
                # one set_attributes call: the SDK takes its lock once per call
                if self.stream_items is not None:
                    extra[A.ML_STREAM_ITEMS] = self.stream_items
                    if self.closed_early:
                        extra[A.ML_STREAM_CLOSED_EARLY] = True
                if error is not None:
                    extra[A.ERROR_TYPE] = error_type
                if extra:
                    span.set_attributes(extra)
                if failure is not None and error is not None:
                    _record_exception(span, error, failure, mon.config.payload)
                    span.set_status(Status(StatusCode.ERROR, failure))
            except Exception as exc:  # noqa: BLE001
                record_error("call.span_attributes", exc)

        # 2. the model's parts: statistics, outcomes, payloads
        ends = self._ends
        for end in mon.ends if ends is None else ends:
            try:
                end(self)
            except Exception as exc:  # noqa: BLE001
                record_error(getattr(end, "__qualname__", "part"), exc)

        # 3. checks, end the span, leave its context
        try:
            if recording and self.checks_fired:
                span.set_attribute(A.ML_CHECKS_FIRED, list(self.checks_fired))
            span.end()
        except Exception as exc:  # noqa: BLE001
            record_error("call.span_end", exc)
        token = self._token
        if token is not None:
            self._token = None
            self.detach(token)

        # 4. last_prediction_id() is this call's id again: finish runs in the caller's context
        # (after the function returned or raised, at __exit__, or in the stream's last
        # resumption), and an instrumented model that this one called has set its own id
        # there meanwhile. Not for a stream closed early: close() may come from the garbage
        # collector, in whatever thread and context happens to run it.
        if ends is None and not self.closed_early:
            _set_last_prediction_id(self.prediction_id)

        # 5. what this call cost the caller's thread beyond the function: before it ran
        # (start) and since it returned (this method); ml.telemetry.overhead
        try:
            mon.serving.add_overhead((self._start_ns - self._t0_ns) + (_perf_counter_ns() - end_ns))
        except Exception as exc:  # noqa: BLE001
            record_error("call.overhead", exc)


def _record_first_item(mon: ModelMonitor, seconds: float, failure: str | None) -> None:
    """``ml.prediction.time_to_first_item``, with the duration's attributes."""
    inst = _instruments.ensure()
    if inst is None:  # the instruments are being made (a collection is running): skip
        return
    attrs = mon.serving.attributes
    if failure is not None:
        attrs = {**attrs, A.ERROR_TYPE: failure}
    inst.time_to_first_item.record(seconds, attrs)


def start_prediction(
    monitor: ModelMonitor,
    inputs: Any = MISSING,
    *,
    attach: bool = True,
    span_attributes: dict[str, Any] | None = None,
    primary: bool = True,
) -> Prediction:
    """Start one prediction: id, span (if sampled), start time. Never raises.

    With ``attach`` the span becomes the current span until the prediction ends (functions
    and context managers); generators attach around each resumption instead.
    ``span_attributes`` replaces the monitor's start attributes (``wrap()`` adds
    ``ml.model.method``). A prediction that is not ``primary`` gets its span and serving
    metrics only: no parts (statistics, payload, outcome cache) and it leaves
    :func:`last_prediction_id` alone (a primary one sets it here and again when it ends).
    """
    t0 = _perf_counter_ns()
    call = Prediction.__new__(Prediction)
    call.monitor = monitor
    call.checks_fired = []
    if not primary:
        call._ends = _NO_ENDS
    try:
        pid = _new_prediction_id()
        if type(pid) is not str:
            raise TypeError(f"prediction id generator returned {type(pid).__name__}")
        if primary:
            _set_last_prediction_id(pid)
    except Exception as exc:  # noqa: BLE001
        record_error("call.prediction_id", exc)
        pid = ""
        if primary:  # not the id of an earlier call
            _set_last_prediction_id(pid)
    call.prediction_id = pid
    try:
        if monitor.generation != runtime.generation:
            monitor.refresh()
        # Everything known at the start goes into the start attributes: one dict per call
        # (~0.1 µs) is much cheaper than set_attribute calls on the span later (~0.7 µs each).
        attrs = {**(monitor.span_attributes if span_attributes is None else span_attributes)}
        if pid:
            attrs[A.ML_PREDICTION_ID] = pid
        if inputs is not MISSING:
            call.inputs = call._shape_of = inputs
            rows, features = _input_shape(inputs)
            call.rows = rows
            call.features = features
            if rows is not None:
                attrs[A.ML_INPUT_ROWS] = rows
            if features is not None:
                attrs[A.ML_INPUT_FEATURES] = features
        s = monitor.tracer.start_span(monitor.span_name, attributes=attrs)
        if type(s) not in _SPAN_TYPES:  # an ABC isinstance per call costs; a set lookup not
            if not isinstance(s, Span):
                raise TypeError(f"tracer returned {type(s).__name__} instead of a Span")
            _SPAN_TYPES.add(type(s))
        call.span = s
    except Exception as exc:  # noqa: BLE001
        record_error("call.span_start", exc)
        call.inputs = inputs
    if attach:
        call._token = call.attach()
    call._t0_ns = t0  # modelotel's time before the function runs: _start_ns - _t0_ns
    call._start_ns = _perf_counter_ns()
    return call
