"""``@modelotel.instrument``: a span, serving metrics and statistics around a predict function.

Example:
    >>> import modelotel
    >>> @modelotel.instrument(model="churn", version="3")
    ... def predict(X):
    ...     return [0.0 for _ in X]
    >>> predict([[1.0, 2.0]])
    [0.0]

The wrapper's kind is chosen once, at decoration: async generator, coroutine, generator or
plain function, and the wrapper is a closure of the same kind (a sync wrapper around a
coroutine would time the creation of the coroutine, not the work), made to look like the
original with ``functools.update_wrapper``: methods, ``staticmethod``, ``classmethod``,
``__name__``, ``__doc__``, ``inspect.signature``, ``inspect.isfunction``,
``inspect.iscoroutinefunction`` and friends stay truthful, and cloudpickle ships the
instrumented function by value (Ray, Spark). ``modelotel.wrap(model)`` (:mod:`modelotel._wrap`)
uses the same wrappers for a model object's predict methods.

Per call, in this order: is modelotel enabled and not suppressed? (else call straight
through) -> :func:`~modelotel._prediction.start_prediction` -> the user's function, the
only unguarded code -> :meth:`~modelotel._prediction.Prediction.stop` (or ``fail``). The
user's exception is re-raised with a bare ``raise``: the same object with the same
traceback.

Streams (generators, async generators) get one span per stream, started at the first
iteration and ended when the stream is exhausted, closed early (not an error) or raises.
The span is the current span only while the user's generator body runs: it is attached
around each resumption and detached before the item is handed to the consumer.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._monitor import ModelMonitor, get_monitor
from modelotel._options import ModelConfig, ModelOptions, model_config
from modelotel._prediction import Prediction, start_prediction
from modelotel._runtime import runtime
from modelotel._safety import record_error
from modelotel._suppress import is_suppressed
from modelotel._types import MISSING

if TYPE_CHECKING:
    from typing_extensions import Unpack

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_SELF_NAMES = ("self", "cls")


# --------------------------------------------------------------------------- helpers
#: Attribute set on every instrumented function: its plan (and the double-decoration marker).
PLAN_ATTR = "__modelotel_plan__"
#: Class attribute of the proxy that ``wrap()`` puts around a model object.
PROXY_ATTR = "__modelotel_proxy__"


def _unwrap_descriptor(fn: Any) -> Any:
    """The function inside a staticmethod / classmethod object (else ``fn``)."""
    if isinstance(fn, (staticmethod, classmethod)):
        return fn.__func__
    return fn


def _is_instrumented(fn: Any) -> bool:
    """Whether ``fn`` (or anything on its ``__wrapped__`` chain) is already instrumented."""
    obj = fn
    for _ in range(100):
        if obj is None:
            return False
        if getattr(type(obj), PROXY_ATTR, False):  # a wrap()-ed model (modelotel._wrap)
            return True
        inner = _unwrap_descriptor(obj)
        if inner is not obj:
            obj = inner
            continue
        try:
            d = getattr(obj, "__dict__", None)
            if not isinstance(d, dict):
                return False
            if PLAN_ATTR in d:
                return True
            obj = d.get("__wrapped__")
        except Exception:  # noqa: BLE001 - an exotic object with a broken __dict__: not ours
            return False
    return False


def _input_selector(fn: Any, input_arg: int | str | None) -> tuple[int, str | None]:
    """(index into the call's ``args``, parameter name) of the model input.

    Resolved once, at decoration. A function whose first parameter is ``self`` or ``cls``
    is called with it in ``args`` (methods, classmethods), so positions count from 1 there.
    At call time the input is ``args[pos]`` when given positionally, else ``kwargs[name]``.
    """
    names: list[str] = []
    positional: list[str] = []
    try:
        params = list(inspect.signature(fn).parameters.values())
        names = [
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        positional = [
            p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):  # builtins without a signature
        pass
    offset = 1 if positional and positional[0] in _SELF_NAMES else 0
    after_self = positional[offset:]
    if input_arg is None:
        return offset, after_self[0] if after_self else None
    if isinstance(input_arg, int):
        name = after_self[input_arg] if input_arg < len(after_self) else None
        return offset + input_arg, name
    if input_arg in positional:
        return positional.index(input_arg), input_arg
    if input_arg in names or not names:
        return sys.maxsize, input_arg  # keyword-only (or unknown signature): by name
    raise ValueError(
        f"modelotel: input_arg={input_arg!r} is not a parameter of "
        f"{getattr(fn, '__qualname__', fn)!r}; parameters: {', '.join(names)}"
    )


def _default_name(fn: Any) -> str:
    fn = _unwrap_descriptor(fn)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name:
        name = type(fn).__qualname__
    return name.replace(".<locals>", "")


def _rebuild_plan(
    config: ModelConfig,
    pos: int,
    name: str | None,
    framework: str,
    method: str = "",
    primary: bool = True,
) -> _Plan:
    return _Plan(config, pos, name, framework, method, primary)


class _Plan:
    """What every call of one instrumented callable shares (built at decoration).

    ``method`` (set by ``wrap()``) goes on the span as ``ml.model.method``; a plan that is
    not ``primary`` (a wrapped model's secondary method) starts its calls without the
    model's parts: decided here, once, so a call pays nothing for it.
    Pickles as its config (the monitor is rebuilt lazily in the process that unpickles).
    """

    __slots__ = ("config", "framework", "method", "monitor", "name", "pos", "primary", "span_attrs")

    def __init__(
        self,
        config: ModelConfig,
        pos: int,
        name: str | None,
        framework: str,
        method: str = "",
        primary: bool = True,
    ) -> None:
        self.config = config
        self.pos = pos
        self.name = name
        self.monitor: ModelMonitor | None = None
        self.framework = framework
        self.method = method
        self.primary = primary
        #: start attributes of the span (the monitor's plus ml.model.method); None: the monitor's
        self.span_attrs: dict[str, Any] | None = None
        # the settings (the kill switch among them) are parsed before the first call of a
        # wrapper, also of one unpickled in another process (Ray, Spark), which comes here
        runtime.settings  # noqa: B018

    def __reduce__(self) -> Any:
        return (
            _rebuild_plan,
            (self.config, self.pos, self.name, self.framework, self.method, self.primary),
        )

    def begin(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], attach: bool
    ) -> Prediction | None:
        """Start a call (never raises; None when not even a monitor could be built)."""
        try:
            mon = self.monitor
            if mon is None:
                mon = get_monitor(self.config)
                if self.framework and not mon.framework:
                    mon.framework = self.framework
                if self.primary and self.method and not mon.method:
                    mon.method = self.method  # ml.model.info: which method feeds statistics
                if self.method:
                    self.span_attrs = {**mon.span_attributes, A.ML_MODEL_METHOD: self.method}
                self.monitor = mon
            pos = self.pos
            if len(args) > pos:
                inputs = args[pos]
            else:
                name = self.name
                inputs = kwargs.get(name, MISSING) if name is not None else MISSING
        except Exception as exc:  # noqa: BLE001
            record_error("instrument.begin", exc)
            return None
        return start_prediction(
            mon, inputs, attach=attach, span_attributes=self.span_attrs, primary=self.primary
        )


# --------------------------------------------------------------------------- wrappers
# Wrappers are plain closures of the same kind as the wrapped function (def / async def /
# generator / async generator) with functools.update_wrapper: `inspect` stays truthful,
# methods bind like any function, they cost ~0.1 µs, and cloudpickle ships them by value
# (closure included) so Ray / Spark workers get the instrumented function.


def _make_sync(fn: Any, plan: _Plan) -> Callable[..., Any]:
    begin = plan.begin

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not runtime.enabled or is_suppressed():
            return fn(*args, **kwargs)
        call = begin(args, kwargs, True)
        if call is None:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        call.stop(result)
        return result

    return wrapper


def _make_async(fn: Any, plan: _Plan) -> Callable[..., Any]:
    begin = plan.begin

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not runtime.enabled or is_suppressed():
            return await fn(*args, **kwargs)
        call = begin(args, kwargs, True)
        if call is None:
            return await fn(*args, **kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        call.stop(result)
        return result

    return wrapper


def _make_generator(fn: Any, plan: _Plan) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # a generator function itself: its body (and this check) runs at the first next()
        if not runtime.enabled or is_suppressed():
            return (yield from fn(*args, **kwargs))
        gen = fn(*args, **kwargs)  # first: bad arguments raise here, before any span starts
        call = plan.begin(args, kwargs, False)
        if call is None:
            return (yield from gen)
        items = 0
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = call.attach()
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = gen.throw(exc)
                else:
                    item = gen.send(to_send)
            except StopIteration as stop:
                call.stream_items = items
                call.stop()
                return stop.value
            except BaseException as exc:
                call.stream_items = items
                call.fail(exc)
                raise
            finally:
                call.detach(token)
            items += 1
            call.add_item(item)
            try:
                to_send = yield item
            except GeneratorExit:
                # the consumer closed the stream early: not an error
                call.stream_items = items
                call.closed_early = True
                token = call.attach()
                try:
                    gen.close()
                finally:
                    call.detach(token)
                    call.stop()
                raise
            except BaseException as exc:  # noqa: BLE001 - consumer's throw(): forward it
                to_send = None
                to_throw = exc

    return wrapper


def _make_async_generator(fn: Any, plan: _Plan) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        agen = fn(*args, **kwargs)  # first: bad arguments raise here, before any span starts
        call = None
        if runtime.enabled and not is_suppressed():
            call = plan.begin(args, kwargs, False)
        items = 0
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = call.attach() if call is not None else None
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    item = await agen.athrow(exc)
                else:
                    item = await agen.asend(to_send)
            except StopAsyncIteration:
                if call is not None:
                    call.stream_items = items
                    call.stop()
                return
            except BaseException as exc:
                if call is not None:
                    call.stream_items = items
                    call.fail(exc)
                raise
            finally:
                if token is not None:
                    Prediction.detach(token)
            items += 1
            if call is not None:
                call.add_item(item)
            try:
                to_send = yield item
            except GeneratorExit:
                token = call.attach() if call is not None else None
                try:
                    await agen.aclose()
                finally:
                    if call is not None:
                        Prediction.detach(token)
                        call.stream_items = items
                        call.closed_early = True
                        call.stop()
                raise
            except BaseException as exc:  # noqa: BLE001 - consumer's athrow(): forward it
                to_send = None
                to_throw = exc

    return wrapper


def _instrument_with(
    fn: Any, config: ModelConfig, framework: str = "", method: str = "", primary: bool = True
) -> Any:
    """Instrument ``fn`` with an already resolved config (decoration and unpickling)."""
    if isinstance(fn, staticmethod):
        return staticmethod(_instrument_with(fn.__func__, config, framework, method, primary))
    if isinstance(fn, classmethod):
        return classmethod(_instrument_with(fn.__func__, config, framework, method, primary))
    pos, name = _input_selector(fn, config.input_arg)
    plan = _Plan(config, pos, name, framework, method, primary)
    if inspect.isasyncgenfunction(fn):
        wrapper = _make_async_generator(fn, plan)
    elif inspect.iscoroutinefunction(fn):
        wrapper = _make_async(fn, plan)
    elif inspect.isgeneratorfunction(fn):
        wrapper = _make_generator(fn, plan)
    else:
        wrapper = _make_sync(fn, plan)
    try:
        if inspect.isfunction(fn) or inspect.ismethod(fn):
            functools.update_wrapper(wrapper, fn)
        else:  # a callable object (a model's __call__): names only, not its instance dict
            functools.update_wrapper(wrapper, fn, updated=())
    except Exception:  # noqa: BLE001 - an exotic callable: keep the wrapper's own names
        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    setattr(wrapper, PLAN_ATTR, plan)
    return wrapper


# --------------------------------------------------------------------------- public API
@overload
def instrument(fn: F, /) -> F: ...


@overload
def instrument(
    fn: None = None, /, *, model: str | None = None, **options: Unpack[ModelOptions]
) -> Callable[[F], F]: ...


def instrument(
    fn: Any = None, /, *, model: str | None = None, **options: Unpack[ModelOptions]
) -> Any:
    """Instrument a predict function: a span, serving metrics and statistics per call.

    Use bare (``@instrument``) or with options (``@instrument(model="churn", version="3")``).
    Works on functions, methods, staticmethods, classmethods, coroutines, generators and
    async generators. A second ``instrument`` on the same function is a no-op.

    Args:
        fn: the function (when used bare).
        model: model name; defaults to the function's qualified name.
        **options: version, task, owner, input_arg, baseline, feature_names, max_features,
            row_cap, payload_sample_rate, payload (see :class:`modelotel.ModelOptions`).

    Returns:
        The instrumented function (or a decorator, when ``fn`` is None).

    Raises:
        TypeError, ValueError: an option is invalid (at decoration time, never per call).
    """
    if fn is None:
        # resolve now, so a bad option fails where the decorator is written (and a baseline
        # file is loaded once); only the default model name waits for the function
        config = model_config(model=model, default_model="model", **options)
        return functools.partial(_decorate, model=model, options=options, resolved=config)
    return _decorate(fn, model=model, options=options)


def _decorate(
    fn: Any,
    model: str | None,
    options: ModelOptions,
    resolved: ModelConfig | None = None,
) -> Any:
    if not callable(_unwrap_descriptor(fn)):
        raise TypeError(f"modelotel.instrument: {fn!r} is not callable")
    if resolved is None:
        config = model_config(model=model, default_model=_default_name(fn), **options)
    elif model is None and resolved.model_uri is None:  # model_uri= named it already
        config = dataclasses.replace(resolved, model=_default_name(fn))
    else:
        config = resolved
    if not runtime.enabled:
        return fn  # kill switch at decoration time: the user's function, untouched
    if _is_instrumented(fn):
        return fn
    return _instrument_with(fn, config)
