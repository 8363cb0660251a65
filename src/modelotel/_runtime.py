"""The process state of modelotel, in one object: :data:`runtime`.

Example:
    >>> from modelotel._runtime import runtime
    >>> gen = runtime.generation
    >>> runtime.set_providers()            # back to the global OTel providers
    >>> runtime.generation > gen
    True

:class:`Runtime` owns everything modelotel keeps per process:

- **providers**: by default the *global* OpenTelemetry providers (whatever the application,
  ``opentelemetry-instrument`` or :func:`modelotel.configure` installed);
  ``configure()`` and :func:`modelotel.testing.capture` may set explicit ones with
  :meth:`Runtime.set_providers`. Nothing in modelotel replaces a global provider except
  ``configure()`` itself;
- the **generation**, bumped at every change of providers and in a forked child: monitors
  remember the generation they took their tracer, meter and logger from and take new ones
  at their next call when it moved (one attribute compare per call), so a model decorated
  at import follows a ``configure()`` made later;
- the **settings**: the ``MODELOTEL_*`` environment, parsed once (:mod:`modelotel._settings`)
  the first time modelotel needs it, and again by ``configure()``;
  :attr:`Runtime.enabled` is the kill switch, read per call by every wrapper;
- the **registry of models** (one :class:`~modelotel._monitor.ModelMonitor` per
  (model, version)) and the **stores**: process-wide state of the parts (the payload budget
  of the whole process, the outcome book, what ``configure()`` built), each made on first
  use by the module that owns its type;
- the one **fork hook** and one :meth:`Runtime.reset`, which go through all of the above in
  a fixed order.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from opentelemetry import _logs, metrics, trace

from modelotel import _safety
from modelotel._settings import Settings
from modelotel._version import __version__

T = TypeVar("T")

#: Key of "the global meter provider, whatever it is now": the API's global proxy forwards
#: instruments created on it to the real provider set later (once), so instruments built
#: while modelotel follows the global provider are built once, ever.
GLOBAL = "global-meter-provider"


class ProcessState(Protocol):
    """A model or a store: something the fork hook and :meth:`Runtime.reset` must reach."""

    def reset(self) -> None:
        """Forget what was gathered (tests; ``testing.capture()`` for models)."""

    def after_fork(self) -> None:
        """In a forked child: new locks; forget what the parent gathered and did not export."""


class Runtime:
    """The process state (see the module docstring). Use the one instance, :data:`runtime`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        #: Kill switch (``MODELOTEL_ENABLED``). Wrappers read it at decoration (a wrapper
        #: built while it is false is the function itself) and, once built, per call.
        self.enabled = True
        #: Bumped at every change of providers and in a forked child.
        self.generation = 0
        self._settings: Settings | None = None
        # explicit providers; None means "the global one at the time of the call"
        self._tracer_provider: trace.TracerProvider | None = None
        self._meter_provider: metrics.MeterProvider | None = None
        self._logger_provider: _logs.LoggerProvider | None = None
        self._per_global: dict[str, Any] = {}
        self._per_explicit: weakref.WeakKeyDictionary[Any, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self.models: dict[tuple[str, str], Any] = {}
        #: True inside ``testing.capture()``: a collection that finds a model's window
        #: empty (a second look at the same data) keeps the last window's statistics.
        self.hold_empty_windows = False
        self._stores: dict[str, ProcessState] = {}

    def __reduce__(self) -> tuple[Callable[[], Runtime], tuple[()]]:
        # cloudpickle ships an instrumented function by value (Ray, Spark), with the globals
        # its code reads: the runtime of the receiving process is its own, not a copy
        return _the_runtime, ()

    # ------------------------------------------------------------------------- settings
    @property
    def settings(self) -> Settings:
        """The ``MODELOTEL_*`` environment, parsed the first time it is needed."""
        s = self._settings
        if s is None:
            s = self.reload_settings()
        return s

    def reload_settings(self) -> Settings:
        """Parse the environment again (``configure()``; tests that change it)."""
        s = Settings.from_environ()
        with self._lock:
            self._settings = s
            self.enabled = s.enabled
        if s.strict:
            _safety.set_strict(True)
        return s

    def set_enabled(self, enabled: bool) -> None:
        """Turn modelotel on or off for the whole process (tests; the env var is the normal way)."""
        self.settings  # noqa: B018 - parse first, so a later first parse cannot undo this
        self.enabled = bool(enabled)

    # ------------------------------------------------------------------------ providers
    def tracer_provider(self) -> trace.TracerProvider:
        """The tracer provider modelotel uses now: the explicit one, else the global one."""
        tp = self._tracer_provider
        return tp if tp is not None else trace.get_tracer_provider()

    def meter_provider(self) -> metrics.MeterProvider:
        """The meter provider modelotel uses now: the explicit one, else the global one."""
        mp = self._meter_provider
        return mp if mp is not None else metrics.get_meter_provider()

    def logger_provider(self) -> _logs.LoggerProvider:
        """The logger provider modelotel uses now: the explicit one, else the global one."""
        lp = self._logger_provider
        return lp if lp is not None else _logs.get_logger_provider()

    def providers(self) -> tuple[Any, Any, Any]:
        """The explicit providers as set (None where the global one is used), to restore later."""
        return self._tracer_provider, self._meter_provider, self._logger_provider

    def set_providers(
        self,
        tp: trace.TracerProvider | None = None,
        mp: metrics.MeterProvider | None = None,
        lp: _logs.LoggerProvider | None = None,
    ) -> None:
        """Set the providers modelotel uses (None = the global one) and bump the generation.

        All three are replaced at once: ``set_providers(tp=x)`` means "traces to x, metrics
        and logs to the global providers". To restore a previous state pass back what
        :meth:`providers` returned. Whoever sets providers also makes the instruments on the
        new meter provider (:func:`modelotel._instruments.ensure`), so that ``ml.model.info``
        and the health counters are exported before the next predict call.
        """
        with self._lock:
            self._tracer_provider, self._meter_provider, self._logger_provider = tp, mp, lp
            self.generation += 1

    def bump_generation(self) -> int:
        """Make every monitor take its tracer, meter and logger anew at its next call."""
        with self._lock:
            self.generation += 1
            return self.generation

    def meter_provider_key(self) -> Any:
        """Identifies the meter provider modelotel uses now: the explicit one, or :data:`GLOBAL`."""
        mp = self._meter_provider
        return mp if mp is not None else GLOBAL

    def per_meter_provider(self, name: str, factory: Callable[[Any, Any], T]) -> T:
        """``factory(meter, key)``, made once per (``name``, current meter provider).

        ``meter`` is modelotel's meter on the current provider and ``key`` the provider's
        :meth:`meter_provider_key`. The SDK ignores a second registration of an instrument
        name on a meter (it hands back the first instrument and drops the new callbacks), so
        instruments must be made once per provider, not again when only the generation moved
        (``configure()`` attaching to it, a fork). Callbacks report only while
        ``meter_provider_key() is key`` (an old provider may still be collected).
        """
        with self._lock:
            key = self.meter_provider_key()
            if key is GLOBAL:
                slot = self._per_global
            else:
                try:
                    slot = self._per_explicit.setdefault(key, {})
                except TypeError:  # a provider that cannot be weakly referenced: no caching
                    slot = {}
            if name not in slot:
                meter = self.meter_provider().get_meter("modelotel", __version__)
                slot[name] = factory(meter, key)
            return slot[name]  # type: ignore[no-any-return]

    # --------------------------------------------------------------- models and stores
    def model(self, key: tuple[str, str], factory: Callable[[], T]) -> T:
        """The model ``key`` (``(name, version)``) in the registry, made by ``factory`` once."""
        found = self.models.get(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        with self._lock:
            found = self.models.get(key)
            if found is None:
                found = self.models[key] = factory()
            return found

    def readmit(self, key: tuple[str, str], model: Any) -> None:
        """Put ``model`` back under ``key`` unless taken (after :meth:`retire_models`)."""
        if self.models.get(key) is None:
            with self._lock:
                self.models.setdefault(key, model)

    def retire_models(self) -> None:
        """Empty the registry (tests): every collection reads every registered model, so a
        test session that registers thousands of one-off models makes each later collection
        slower. A model still in use comes back at its next call: the generation moves, and
        :meth:`~modelotel._monitor.ModelMonitor.refresh` readmits it."""
        with self._lock:
            self.models.clear()
            self.generation += 1

    def store(self, name: str, factory: Callable[[], T]) -> T:
        """The process-wide state ``name`` of a part, made by ``factory`` on first use.

        ``T`` must implement :class:`ProcessState`: the fork hook and :meth:`reset` reach it.
        """
        found = self._stores.get(name)
        if found is not None:
            return found  # type: ignore[return-value]
        with self._lock:
            found = self._stores.get(name)
            if found is None:
                found = factory()  # type: ignore[assignment]
                self._stores[name] = found  # type: ignore[assignment]
            return found  # type: ignore[return-value]

    def existing_store(self, name: str) -> Any:
        """The store ``name`` if it was made, else None (readers that must not make it)."""
        return self._stores.get(name)

    # ------------------------------------------------------------------ reset and fork
    def reset(self) -> None:
        """Forget explicit providers, settings, every model's and every store's state (tests)."""
        with self._lock:
            self._tracer_provider = self._meter_provider = self._logger_provider = None
            self._settings = None
            models = list(self.models.values())
            stores = list(self._stores.values())
            self.generation += 1
        for state in (*models, *stores):
            with _safety.guard("runtime.reset"):
                state.reset()

    def after_fork_in_child(self) -> None:
        """The one fork hook (``os.register_at_fork``), in this order:

        1. new locks (a thread of the parent may have held one at fork time: it stays held);
        2. the health counters start from zero (the parent exports its own);
        3. a new generation: every monitor takes new tracer / meter / logger objects and
           rebuilds what it keeps per provider at its next call;
        4. every model forgets the aggregations the parent had not exported yet, so nothing
           is exported twice under two ``service.instance.id`` values;
        5. every store, in the order they were made (``configure()``'s renews the exporters
           and metric readers of this process).
        """
        self._lock = threading.RLock()
        _safety.health.after_fork()
        self.generation += 1
        for state in (*self.models.values(), *self._stores.values()):
            with _safety.guard("runtime.fork"):
                state.after_fork()


#: The process state of modelotel.
runtime = Runtime()


def _the_runtime() -> Runtime:
    """The runtime of this process (what an unpickled reference to it becomes)."""
    return runtime

if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=runtime.after_fork_in_child)
