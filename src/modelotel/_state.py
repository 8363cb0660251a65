"""Process-wide state of modelotel: which OTel providers to use, and whether we are on.

Example:
    >>> from modelotel import _state
    >>> gen = _state.generation()
    >>> _state.set_providers()            # back to the global OTel providers
    >>> _state.generation() > gen
    True

By default modelotel uses the *global* OpenTelemetry providers (whatever the application,
``opentelemetry-instrument`` or :func:`modelotel.configure` installed). ``configure()`` and
:func:`modelotel.testing.capture` may install their own through :func:`set_providers`;
nothing in modelotel calls ``opentelemetry.trace.set_tracer_provider`` and friends except
``configure()`` itself.

Every change of providers (``set_providers``, a fork, ``bump_generation``) increments a
generation counter. Monitors remember the generation they built their tracer, meter and
instruments for and rebuild them lazily at their next call when it moved, so a model
decorated at import time follows a ``configure()`` made later. Reading the counter is one
module-global load: cheap enough for every call.

The kill switch (``MODELOTEL_ENABLED``) is resolved once, at import, into
:data:`ENABLED`; wrappers built while it is false are pure pass-throughs.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry import _logs, metrics, trace

from modelotel._safety import health
from modelotel.environment_variables import MODELOTEL_ENABLED

_lock = threading.RLock()

# Explicit providers; ``None`` means "use the global one at the time of the call".
_tracer_provider: trace.TracerProvider | None = None
_meter_provider: metrics.MeterProvider | None = None
_logger_provider: _logs.LoggerProvider | None = None

# Bumped on every change of providers (and after fork); monitors compare it per call.
_generation = 0

_reset_callbacks: list[Callable[[], None]] = []


def _parse_enabled(raw: str | None) -> bool:
    if raw is None:
        return True
    value = raw.strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    health.warn_once(
        "env:" + MODELOTEL_ENABLED,
        "modelotel: %s=%r is not one of true/false; keeping modelotel enabled",
        MODELOTEL_ENABLED,
        raw,
    )
    return True


#: Resolved once at import from ``MODELOTEL_ENABLED``. Wrappers read it when they are built
#: (decoration time) and, for wrappers built while enabled, once more per call (a global load),
#: so tests and applications can flip it with :func:`set_enabled`.
ENABLED: bool = _parse_enabled(os.environ.get(MODELOTEL_ENABLED))


def set_enabled(enabled: bool) -> None:
    """Turn modelotel on or off for the whole process (tests; the env var is the normal way)."""
    global ENABLED
    ENABLED = bool(enabled)


def reload_enabled() -> bool:
    """Re-read ``MODELOTEL_ENABLED`` from the environment (tests); returns the new value."""
    set_enabled(_parse_enabled(os.environ.get(MODELOTEL_ENABLED)))
    return ENABLED


def tracer_provider() -> trace.TracerProvider:
    """The tracer provider modelotel uses now: the explicit one, else the global one."""
    tp = _tracer_provider
    return tp if tp is not None else trace.get_tracer_provider()


def meter_provider() -> metrics.MeterProvider:
    """The meter provider modelotel uses now: the explicit one, else the global one."""
    mp = _meter_provider
    return mp if mp is not None else metrics.get_meter_provider()


def logger_provider() -> _logs.LoggerProvider:
    """The logger provider modelotel uses now: the explicit one, else the global one."""
    lp = _logger_provider
    return lp if lp is not None else _logs.get_logger_provider()


def providers() -> tuple[Any, Any, Any]:
    """The explicit providers as set (``None`` where the global one is used), for save/restore."""
    return _tracer_provider, _meter_provider, _logger_provider


def set_providers(
    tp: trace.TracerProvider | None = None,
    mp: metrics.MeterProvider | None = None,
    lp: _logs.LoggerProvider | None = None,
) -> None:
    """Set the providers modelotel uses (``None`` = the global one) and bump the generation.

    All three are replaced at once: ``set_providers(tp=x)`` means "traces to x, metrics and
    logs to the global providers". To restore a previous state pass back what
    :func:`providers` returned.
    """
    global _tracer_provider, _meter_provider, _logger_provider
    with _lock:
        _tracer_provider, _meter_provider, _logger_provider = tp, mp, lp
        bump_generation()


_per_provider_lock = threading.Lock()
#: Key of "the global meter provider, whatever it is now": the API's global proxy forwards
#: instruments created on it to the real provider set later (once), so instruments built
#: while modelotel follows the global provider are built once, ever.
GLOBAL = "global-meter-provider"
_per_global: dict[str, Any] = {}
_per_explicit: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def meter_provider_key() -> Any:
    """Identifies the meter provider modelotel uses now: the explicit one, or :data:`GLOBAL`."""
    mp = _meter_provider
    return mp if mp is not None else GLOBAL


def per_meter_provider(name: str, factory: Callable[[Any], Any]) -> tuple[Any, Any]:
    """``(factory(meter), key)`` built once per (``name``, current meter provider).

    ``meter`` is modelotel's meter on the current provider and ``key`` the provider's
    :func:`meter_provider_key`. Use it to create observable instruments exactly once per
    provider: the SDK ignores a second registration of a name on a meter (it hands back the
    first instrument and drops the new callbacks), so instruments must not be re-created
    when only the generation moved (``configure()``, a fork). Callbacks should report only
    while ``meter_provider_key() is key`` (an old provider may still be collected).
    """
    from modelotel._version import __version__

    with _per_provider_lock:
        key = meter_provider_key()
        if key is GLOBAL:
            slot = _per_global
        else:
            try:
                slot = _per_explicit.setdefault(key, {})
            except TypeError:  # a provider that cannot be weakly referenced: no caching
                slot = {}
        if name not in slot:
            slot[name] = factory(meter_provider().get_meter("modelotel", __version__))
        return slot[name], key


def generation() -> int:
    """The current provider generation."""
    return _generation


def bump_generation() -> int:
    """Invalidate every monitor's cached tracer/meter/instruments (after fork, configure).

    Then runs the :func:`on_generation_change` callbacks (each guarded).
    """
    global _generation
    with _lock:
        _generation += 1
        gen = _generation
        callbacks = list(_generation_callbacks)
    from modelotel._safety import guard

    for cb in callbacks:
        with guard("state.generation"):
            cb()
    return gen


_generation_callbacks: list[Callable[[], object]] = []


def on_generation_change(callback: Callable[[], object]) -> None:
    """Register a callback run after every provider change (e.g. to register instruments)."""
    with _lock:
        _generation_callbacks.append(callback)


def on_reset(callback: Callable[[], None]) -> None:
    """Register a callback run by :func:`reset` (module-level caches of other parts)."""
    with _lock:
        _reset_callbacks.append(callback)


def reset() -> None:
    """Forget explicit providers and per-process caches (tests; the child after a fork).

    Runs every :func:`on_reset` callback (each guarded), then bumps the generation.
    """
    global _tracer_provider, _meter_provider, _logger_provider
    with _lock:
        _tracer_provider = _meter_provider = _logger_provider = None
        callbacks = list(_reset_callbacks)
    from modelotel._safety import guard

    for cb in callbacks:
        with guard("state.reset"):
            cb()
    bump_generation()


def _after_fork_in_child() -> None:
    # The child inherits the parent's monitors and their unexported aggregations: a new
    # generation makes every monitor drop them (and rebuild its instruments) before it
    # records anything, so nothing the parent buffered is exported twice.
    global _generation, _lock
    _lock = threading.RLock()  # another thread may have held it at fork time
    _generation += 1


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)
