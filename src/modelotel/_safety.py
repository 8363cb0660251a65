"""The one guard that keeps modelotel's own errors out of the user's predict call.

Example:
    >>> from modelotel._safety import guard, health
    >>> with guard("stats"):
    ...     raise ValueError("a bug of ours")     # swallowed, counted, logged at DEBUG
    >>> health.errors["stats"] >= 1
    True

Everything modelotel runs around a prediction (attribute building, span calls, metric
records, statistics, serialization, sampling, user hooks) runs inside ``guard(component)``.
A swallowed error increments ``ml.telemetry.errors{ml.telemetry.component}`` and is logged
at DEBUG (never at WARNING per call). What telemetry drops on purpose (budgets, caps, bad
input) is counted with :func:`count_dropped` / :func:`count_skipped` instead.

Strict mode (``MODELOTEL_STRICT=1`` or :func:`set_strict`) is for tests: swallowed errors
are still swallowed, so the user's call stays unharmed, but they are also kept in
:data:`health.strict_errors` so a test fixture can fail the test that caused them.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from types import TracebackType

_logger = logging.getLogger("modelotel")


class Health:
    """Counters of the SDK's own health, read by observable instruments at export time.

    Increments are plain dict updates (atomic enough under the GIL for counters that are
    only ever added to); nothing here allocates per call beyond the first key.
    """

    def __init__(self) -> None:
        self.errors: defaultdict[str, int] = defaultdict(int)
        self.dropped: defaultdict[str, int] = defaultdict(int)
        self.skipped: defaultdict[str, int] = defaultdict(int)
        self.strict_errors: list[tuple[str, BaseException]] = []
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget every count (tests)."""
        with self._lock:
            self.errors.clear()
            self.dropped.clear()
            self.skipped.clear()
            self.strict_errors.clear()
            self._warned.clear()

    def after_fork(self) -> None:
        """In a forked child: start from zero (the parent exports its own counts) with a new
        lock (another thread of the parent may have held it at fork time)."""
        self._lock = threading.Lock()
        self.errors.clear()
        self.dropped.clear()
        self.skipped.clear()
        self.strict_errors.clear()

    def warn_once(self, key: str, msg: str, *args: object) -> None:
        """Log ``msg`` at WARNING the first time ``key`` is seen, DEBUG afterwards."""
        if key in self._warned:
            _logger.debug(msg, *args)
            return
        with self._lock:
            first = key not in self._warned
            self._warned.add(key)
        _logger.log(logging.WARNING if first else logging.DEBUG, msg, *args)


health = Health()

#: Strict mode: ``MODELOTEL_STRICT`` (applied when the settings are parsed) or set_strict().
_strict = False


def set_strict(enabled: bool) -> None:
    """Turn strict mode on or off (tests): swallowed errors are also kept for inspection."""
    global _strict
    _strict = enabled


def record_error(component: str, exc: BaseException) -> None:
    """Count and log one swallowed internal error. Never raises."""
    try:
        health.errors[component] += 1
        if _strict:
            health.strict_errors.append((component, exc))
        _logger.debug("modelotel: internal error in %s (swallowed)", component, exc_info=exc)
    except Exception:  # noqa: BLE001  # pragma: no cover - logging itself failed
        pass


def count_dropped(reason: str, n: int = 1) -> None:
    """Count telemetry dropped on purpose (queue full, budget, cap): ``ml.telemetry.dropped``."""
    health.dropped[reason] += n


def count_skipped(reason: str, n: int = 1) -> None:
    """Count input that statistics skipped (ragged rows, strings, empty batch).

    Exported as ``ml.telemetry.skipped``.
    """
    health.skipped[reason] += n


class guard:  # noqa: N801 - used like a keyword: ``with guard("stats"):``
    """Context manager that swallows and counts any ``Exception`` raised inside it.

    ``BaseException`` subclasses that are not ``Exception`` (KeyboardInterrupt, SystemExit,
    GeneratorExit) pass through: they are the host's, not ours. Instances hold no per-call
    state, so a module may create one per component once and reuse it.
    """

    __slots__ = ("component",)

    def __init__(self, component: str) -> None:
        self.component = component

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        record_error(self.component, exc)
        return True
