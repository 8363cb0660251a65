"""``modelotel.observe``: a context manager (sync and async) for code that cannot be decorated.

Example:
    >>> import modelotel
    >>> with modelotel.observe("churn", version="3") as prediction:
    ...     prediction.record_inputs([[1.0, 2.0]])
    ...     y = [0.5]
    ...     prediction.record_outputs(y)

Every ``with`` (or ``async with``) starts a new :class:`~modelotel._prediction.Prediction`,
so one ``observe`` object may be reused, shared by threads and tasks, and nested. The open
predictions of every ``observe`` object live in ONE module-level ``ContextVar``
(:data:`_OPEN`), a stack of ``(observe object, prediction)`` pairs: each thread and task
sees its own stack, and nothing is allocated per call beyond the stack's tuple. ``__exit__``
ends the prediction with the exception, if any, and returns False, so the user's exception
always propagates unchanged. Options are resolved once per distinct set of arguments and
cached, so ``observe("m")`` in a request handler does not resolve them per call.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from modelotel._monitor import ModelMonitor, get_monitor
from modelotel._options import ModelOptions, model_config
from modelotel._prediction import Prediction, start_prediction
from modelotel._runtime import runtime
from modelotel._safety import record_error
from modelotel._suppress import is_suppressed
from modelotel._types import MISSING

if TYPE_CHECKING:
    from typing_extensions import Unpack

_cache_lock = threading.Lock()
_cache: dict[tuple[Any, ...], ModelMonitor] = {}
_CACHE_MAX = 1024

#: The predictions open in this context: ``(observe object, prediction)``, innermost last.
_OPEN: ContextVar[tuple[tuple[observe, Prediction], ...]] = ContextVar(
    "modelotel.observe", default=()
)


class _DisabledPrediction(Prediction):
    """What ``observe`` yields when modelotel is off or suppressed: accepts and keeps nothing."""

    _done = True

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def record_inputs(self, inputs: Any) -> None:
        return None

    def record_outputs(self, outputs: Any) -> None:
        return None

    def stop(self, outputs: Any = MISSING) -> None:
        return None

    def fail(self, error: BaseException) -> None:
        return None


def _disabled() -> Prediction:
    p = _DisabledPrediction.__new__(_DisabledPrediction)
    p.checks_fired = []
    return p


def _options_key(model: str, options: ModelOptions) -> tuple[Any, ...] | None:
    key = (model, *sorted(options.items()))
    try:
        hash(key)
    except TypeError:  # an unhashable option value (a list of feature names): no caching
        return None
    return key


class observe:  # noqa: N801 - used like a function: ``with modelotel.observe("m"):``
    """Context manager around one prediction, for code that cannot be decorated.

    Args:
        model: model name (required).
        **options: as for :func:`modelotel.instrument` (see :class:`modelotel.ModelOptions`).

    Yields:
        The :class:`~modelotel.Prediction`: ``record_inputs(x)``, ``record_outputs(y)``,
        ``set_attribute(k, v)``, ``prediction_id``.

    Raises:
        TypeError, ValueError: an option is invalid (when ``observe(...)`` is called).
    """

    __slots__ = ("_monitor",)

    def __init__(self, model: str, **options: Unpack[ModelOptions]) -> None:
        self._monitor: ModelMonitor | None = None
        if model is None:
            raise TypeError("modelotel.observe: the model name is required")
        key = _options_key(model, options)
        if key is not None:
            mon = _cache.get(key)
            if mon is not None:
                self._monitor = mon
                return
        config = model_config(model=model, **options)
        if not runtime.enabled:
            return
        try:
            mon = get_monitor(config)
        except Exception as exc:  # noqa: BLE001 - ours: the block then runs uninstrumented
            record_error("observe.monitor", exc)
            return
        self._monitor = mon
        if key is not None:
            with _cache_lock:
                if len(_cache) < _CACHE_MAX:
                    _cache[key] = mon

    def _start(self) -> Prediction:
        mon = self._monitor
        if mon is None or not runtime.enabled or is_suppressed():
            prediction = _disabled()
        else:
            prediction = start_prediction(mon, MISSING, attach=True)
        _OPEN.set((*_OPEN.get(), (self, prediction)))
        return prediction

    def _end(self, exc: BaseException | None) -> None:
        stack = _OPEN.get()
        # normally the innermost entry is ours; a block exited out of order is looked for
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is self:
                prediction = stack[i][1]
                _OPEN.set(stack[:i] + stack[i + 1 :])
                break
        else:  # __exit__ without __enter__ (in this context): ours to swallow
            record_error("observe.exit", RuntimeError("observe: exit without enter"))
            return
        if exc is None:
            prediction.stop()
        else:
            prediction.fail(exc)

    def __enter__(self) -> Prediction:
        return self._start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self._end(exc)
        return False

    async def __aenter__(self) -> Prediction:
        return self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self._end(exc)
        return False
