"""``modelotel.observe``: a context manager (sync and async) for code that cannot be decorated.

Example:
    >>> import modelotel
    >>> with modelotel.observe("churn", version="3") as call:
    ...     call.record_inputs([[1.0, 2.0]])
    ...     y = [0.5]
    ...     call.record_outputs(y)

Every ``with`` (or ``async with``) starts a new :class:`~modelotel._call.Call`: one
``observe`` object may be reused and even nested. ``__exit__`` records the exception, if
any, and returns False, so the user's exception always propagates unchanged. Options are
resolved once per distinct set of arguments and cached, so ``observe("m")`` in a request
handler does not re-read the environment per call.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal

from modelotel import _state
from modelotel._call import MISSING, Call, start_call
from modelotel._monitor import ModelMonitor, get_monitor
from modelotel._safety import record_error
from modelotel._suppress import is_suppressed
from modelotel.config import model_config

_cache_lock = threading.Lock()
_cache: dict[tuple[Any, ...], ModelMonitor] = {}
_CACHE_MAX = 1024


class _DisabledCall(Call):
    """What ``observe`` yields when modelotel is off or suppressed: accepts and keeps nothing."""

    _done = True

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def record_inputs(self, inputs: Any) -> None:
        return None

    def record_outputs(self, outputs: Any) -> None:
        return None

    def finish(self, outputs: Any = MISSING, error: BaseException | None = None) -> None:
        return None


def _disabled_call() -> Call:
    call = _DisabledCall.__new__(_DisabledCall)
    call.checks_fired = []
    return call


class observe:  # noqa: N801 - used like a function: ``with modelotel.observe("m"):``
    """Context manager around one prediction, for code that cannot be decorated.

    Args:
        model: model name (required).
        version, task, owner, runbook_url, input_arg, baseline, feature_names, max_features,
            row_cap, payload_sample_rate, payload: as for :func:`modelotel.instrument`.

    Yields:
        The :class:`~modelotel._call.Call`: ``record_inputs(x)``, ``record_outputs(y)``,
        ``set_attribute(k, v)``, ``prediction_id``.

    Raises:
        TypeError, ValueError: an option is invalid (when ``observe(...)`` is called).
    """

    __slots__ = ("_calls", "_key", "_monitor", "_options")
    # _calls: a ContextVar holding this object's stack of open calls, so one observe object
    # may be shared by threads and tasks (each sees its own stack) and nested.

    def __init__(
        self,
        model: str,
        *,
        version: str | None = None,
        task: str | None = None,
        owner: str | None = None,
        runbook_url: str | None = None,
        input_arg: int | str | None = None,
        baseline: object = None,
        feature_names: Sequence[str] | None = None,
        max_features: int | None = None,
        row_cap: int | None = None,
        payload_sample_rate: float | None = None,
        payload: object = None,
    ) -> None:
        options: dict[str, Any] = {
            "model": model,
            "version": version,
            "task": task,
            "owner": owner,
            "runbook_url": runbook_url,
            "input_arg": input_arg,
            "baseline": baseline,
            "feature_names": feature_names,
            "max_features": max_features,
            "row_cap": row_cap,
            "payload_sample_rate": payload_sample_rate,
            "payload": payload,
        }
        self._monitor: ModelMonitor | None = None
        self._calls: contextvars.ContextVar[tuple[Call, ...]] = contextvars.ContextVar(
            "modelotel_observe_calls", default=()
        )
        key: tuple[Any, ...] | None = tuple(options.values())
        try:
            hash(key)
        except TypeError:
            key = None
        self._key = key
        self._options = options
        if key is not None:
            mon = _cache.get(key)
            if mon is not None:
                self._monitor = mon
                return
        if model is None:
            raise TypeError("modelotel.observe: the model name is required")
        config = model_config(**options)
        if not _state.ENABLED:
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

    def _start(self) -> Call:
        mon = self._monitor
        if mon is None or not _state.ENABLED or is_suppressed():
            call = _disabled_call()
        else:
            call = start_call(mon, MISSING, attach=True)
        self._calls.set((*self._calls.get(), call))
        return call

    def _end(self, exc: BaseException | None) -> None:
        stack = self._calls.get()
        if not stack:  # __exit__ without __enter__ (in this context): ours to swallow
            record_error("observe.exit", RuntimeError("observe: exit without enter"))
            return
        self._calls.set(stack[:-1])
        stack[-1].finish(error=exc)

    def __enter__(self) -> Call:
        return self._start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self._end(exc)
        return False

    async def __aenter__(self) -> Call:
        return self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self._end(exc)
        return False
