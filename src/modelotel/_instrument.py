"""``@modelotel.instrument`` for predict functions and ``modelotel.wrap(model)`` for model objects.

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
instrumented function by value (Ray, Spark). ``wrap(obj)`` uses a ``wrapt.ObjectProxy`` so
the model object keeps passing ``isinstance`` checks.

Per call, in this order: is modelotel enabled and not suppressed? (else call straight
through) -> :func:`~modelotel._call.start_call` -> the user's function, the only unguarded
code -> :meth:`~modelotel._call.Call.finish`. The user's exception is re-raised with a bare
``raise``: the same object with the same traceback.

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
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

import wrapt

from modelotel import _state
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._call import MISSING, Call, start_call
from modelotel._monitor import ModelMonitor, get_monitor
from modelotel._safety import record_error
from modelotel._suppress import is_suppressed
from modelotel.config import ModelConfig, model_config

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_SELF_NAMES = ("self", "cls")


# --------------------------------------------------------------------------- helpers
#: Attribute set on every instrumented function: its plan (and the double-decoration marker).
PLAN_ATTR = "__modelotel_plan__"


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
        if isinstance(obj, _ModelProxy):
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
    monitor's finish hooks: decided here, once, so a call pays nothing for it.
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

    def __reduce__(self) -> Any:
        return (
            _rebuild_plan,
            (self.config, self.pos, self.name, self.framework, self.method, self.primary),
        )

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any], attach: bool) -> Call | None:
        """Start a call (never raises; None when not even a monitor could be built)."""
        try:
            mon = self.monitor
            if mon is None:
                mon = get_monitor(self.config)
                if self.framework and not mon.framework:
                    mon.framework = self.framework
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
        return start_call(
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
        if not _state.ENABLED or is_suppressed():
            return fn(*args, **kwargs)
        call = begin(args, kwargs, True)
        if call is None:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.finish(result)
        return result

    return wrapper


def _make_async(fn: Any, plan: _Plan) -> Callable[..., Any]:
    begin = plan.begin

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _state.ENABLED or is_suppressed():
            return await fn(*args, **kwargs)
        call = begin(args, kwargs, True)
        if call is None:
            return await fn(*args, **kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.finish(result)
        return result

    return wrapper


def _make_generator(fn: Any, plan: _Plan) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # a generator function itself: its body (and this check) runs at the first next()
        if not _state.ENABLED or is_suppressed():
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
                call.finish()
                return stop.value
            except BaseException as exc:
                call.stream_items = items
                call.finish(error=exc)
                raise
            finally:
                call.detach(token)
            items += 1
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
                    call.finish()
                raise
            except BaseException as exc:  # noqa: BLE001 - consumer's throw(): forward it
                to_send = None
                to_throw = exc

    return wrapper


def _make_async_generator(fn: Any, plan: _Plan) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        agen = fn(*args, **kwargs)  # first: bad arguments raise here, before any span starts
        call = None
        if _state.ENABLED and not is_suppressed():
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
                    call.finish()
                return
            except BaseException as exc:
                if call is not None:
                    call.stream_items = items
                    call.finish(error=exc)
                raise
            finally:
                if token is not None:
                    Call.detach(token)
            items += 1
            try:
                to_send = yield item
            except GeneratorExit:
                token = call.attach() if call is not None else None
                try:
                    await agen.aclose()
                finally:
                    if call is not None:
                        Call.detach(token)
                        call.stream_items = items
                        call.closed_early = True
                        call.finish()
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
    fn: None = None,
    /,
    *,
    model: str | None = None,
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
) -> Callable[[F], F]: ...


def instrument(
    fn: Any = None,
    /,
    *,
    model: str | None = None,
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
) -> Any:
    """Instrument a predict function: a span, serving metrics and statistics per call.

    Use bare (``@instrument``) or with options (``@instrument(model="churn", version="3")``).
    Works on functions, methods, staticmethods, classmethods, coroutines, generators and
    async generators. A second ``instrument`` on the same function is a no-op.

    Args:
        fn: the function (when used bare).
        model: model name; defaults to the function's qualified name.
        version: model version (else ``MODELOTEL_MODEL_VERSION``, else "").
        task: "classification", "regression" or "other".
        owner: owning team (else ``MODELOTEL_MODEL_OWNER``).
        runbook_url: the page an on-call engineer opens when one of this model's alerts
            fires (else ``MODELOTEL_MODEL_RUNBOOK_URL``); exported on ``ml.model.info``.
        input_arg: position (after self/cls) or name of the argument holding the input.
        baseline: training baseline (path or ``modelotel.Baseline``) for drift.
        feature_names: column names when the input carries none.
        max_features: most columns that get statistics (default 200).
        row_cap: most rows of one batch reduced for statistics (default 10 000).
        payload_sample_rate: fraction of calls whose payload is logged (default 0).
        payload: a ``modelotel.PayloadConfig``.

    Returns:
        The instrumented function (or a decorator, when ``fn`` is None).

    Raises:
        TypeError, ValueError: an option is invalid (at decoration time, never per call).
    """
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
    if fn is None:
        # resolve now, so a bad option fails where the decorator is written (and a baseline
        # file is loaded once); only the default model name waits for the function
        config = model_config(default_model="model", **options)
        return functools.partial(_decorate, options=options, resolved=config)
    return _decorate(fn, options=options)


def _decorate(
    fn: Any, options: dict[str, Any], framework: str = "", resolved: ModelConfig | None = None
) -> Any:
    if not callable(_unwrap_descriptor(fn)):
        raise TypeError(f"modelotel.instrument: {fn!r} is not callable")
    if resolved is None:
        config = model_config(default_model=_default_name(fn), **options)
    elif options["model"] is None:
        config = dataclasses.replace(resolved, model=_default_name(fn))
    else:
        config = resolved
    if not _state.ENABLED:
        return fn  # kill switch at decoration time: the user's function, untouched
    if _is_instrumented(fn):
        return fn
    return _instrument_with(fn, config, framework)


# --------------------------------------------------------------------------- wrap()
#: Predict-like method names, in the order they are looked for (duck typing; no imports).
PREDICT_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "inplace_predict",  # XGBoost Booster
)

_FRAMEWORKS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "torch": "pytorch",
    "transformers": "transformers",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "onnxruntime": "onnxruntime",
}


def _framework_of(obj: Any) -> str:
    """The ML framework of ``obj``'s class (first known top-level package in its MRO)."""
    for cls in type(obj).__mro__:
        top = (getattr(cls, "__module__", "") or "").split(".", 1)[0]
        if top in _FRAMEWORKS:
            return _FRAMEWORKS[top]
    return ""


def _mro_names(obj: Any) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in type(obj).__mro__}


def find_predict_methods(obj: Any) -> tuple[str, ...]:
    """The names of ``obj``'s predict-like methods, found by duck typing.

    PyTorch ``nn.Module`` and Hugging Face pipelines: ``__call__``. scikit-learn, XGBoost,
    LightGBM (and anything with the same API): whichever of :data:`PREDICT_METHODS` exist.
    Other callables: ``__call__``.
    """
    names = _mro_names(obj)
    if "torch.nn.modules.module.Module" in names:
        return ("__call__",)
    if any(n.startswith("transformers.pipelines.") and n.endswith("Pipeline") for n in names):
        return ("__call__",)
    found = []
    for m in PREDICT_METHODS:
        try:
            # hasattr: scikit-learn hides unavailable methods (available_if) this way
            if callable(getattr(obj, m, None)):
                found.append(m)
        except Exception:  # noqa: BLE001 - a property that raises is not a predict method
            continue
    if found:
        return tuple(found)
    if callable(obj):
        return ("__call__",)
    return ()


class _ModelProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A model object with its predict-like methods instrumented.

    ``isinstance`` and attribute access behave as on the original (wrapt proxy); only the
    listed methods are replaced, on the proxy, so the model's internal calls (a
    ``predict`` that calls ``self.decision_function``) do not make nested spans.
    The first listed method is the primary one: only its calls feed the statistics, the
    payload sampler and the outcome cache; every method's span carries ``ml.model.method``.
    """

    def __init__(self, obj: Any, methods: tuple[str, ...], config: ModelConfig, framework: str):
        super().__init__(obj)
        self._self_config = config
        self._self_framework = framework
        self._self_method_names = methods
        bound: dict[str, Any] = {}
        for i, m in enumerate(methods):
            target = obj if m == "__call__" else getattr(obj, m)
            if m != "__call__" and _is_instrumented(getattr(target, "__func__", target)):
                continue  # the class already decorated it with @instrument: no second span
            bound[m] = _instrument_with(target, config, framework, m, primary=i == 0)
        self._self_methods = bound

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup on the proxy failed; the proxy's own state lives in
        # _self_* attributes (wrapt keeps them on the proxy, not on the wrapped object)
        if name.startswith("_self_"):
            raise AttributeError(name)
        methods = self._self_methods
        if name in methods:
            return methods[name]
        wrapped = self.__wrapped__
        attr = getattr(wrapped, name)
        if getattr(attr, "__self__", None) is wrapped and callable(attr):
            # `model = wrap(net).eval()`, `.to(device)`, sklearn's `.fit(X, y)`: a method that
            # returns its own object must hand back the proxy, or the instrumentation is lost.
            return wrapt.FunctionWrapper(attr, self._self_keep_proxy)
        return attr

    def _self_keep_proxy(self, fn: Any, _instance: Any, args: Any, kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        return self if result is self.__wrapped__ else result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self._self_methods.get("__call__")
        if fn is None:
            return self.__wrapped__(*args, **kwargs)
        return fn(*args, **kwargs)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (
            _rewrap,
            (self.__wrapped__, self._self_method_names, self._self_config, self._self_framework),
        )

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)

    def __copy__(self) -> Any:
        import copy

        return _rewrap(
            copy.copy(self.__wrapped__),
            self._self_method_names,
            self._self_config,
            self._self_framework,
        )

    def __deepcopy__(self, memo: Any) -> Any:
        import copy

        return _rewrap(
            copy.deepcopy(self.__wrapped__, memo),
            self._self_method_names,
            self._self_config,
            self._self_framework,
        )


def _rewrap(obj: Any, methods: tuple[str, ...], config: ModelConfig, framework: str) -> Any:
    """Unpickling / copy helper for :class:`_ModelProxy`."""
    return _ModelProxy(obj, methods, config, framework)


def wrap(
    obj: T,
    *,
    model: str | None = None,
    version: str | None = None,
    methods: Sequence[str] | None = None,
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
) -> T:
    """Instrument an existing model object without editing its code.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> import modelotel
        >>> clf = modelotel.wrap(LogisticRegression(), model="churn", version="3")
        >>> isinstance(clf, LogisticRegression)
        True

    Args:
        obj: a scikit-learn / XGBoost / LightGBM estimator, a PyTorch ``nn.Module``, a Hugging
            Face pipeline, or any callable. A plain function is instrumented like
            :func:`instrument` would.
        model: model name; defaults to the class name.
        methods: names of the methods to instrument; by default the predict-like ones
            (:func:`find_predict_methods`). The first one is the *primary* method: by
            default the first found in :data:`PREDICT_METHODS` order (``predict`` before
            ``predict_proba``, ...). Only calls of the primary method feed the input and
            output statistics, drift, checks, payload sampling, the outcome cache and
            :func:`modelotel.last_prediction_id`, so class labels from ``predict`` are not
            mixed with probabilities from ``predict_proba`` and a batch passed to both is
            counted once. Every method gets spans (with ``ml.model.method``) and the
            serving metrics. A caller that only uses ``predict_proba`` passes
            ``methods=["predict_proba", "predict"]`` to make it the primary one.
        version, task, owner, runbook_url, input_arg, baseline, feature_names, max_features,
            row_cap, payload_sample_rate, payload: as for :func:`instrument`.

    Returns:
        A proxy that passes ``isinstance`` checks and behaves like ``obj``, with its predict
        methods instrumented (or ``obj`` itself when modelotel is disabled).

    Raises:
        TypeError: no predict-like method was found, or an option is invalid.
        ValueError: a name in ``methods`` is not a method of ``obj``, or an option is invalid.
    """
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
    if _is_instrumented(obj):
        return obj  # already wrapped: a no-op, not a second span
    if inspect.isfunction(obj) or inspect.ismethod(obj) or isinstance(obj, functools.partial):
        return _decorate(obj, options)  # type: ignore[no-any-return]
    framework = _framework_of(obj)
    config = model_config(default_model=type(obj).__qualname__, **options)
    if methods is None:
        names = find_predict_methods(obj)
        if not names:
            raise TypeError(
                f"modelotel.wrap: found no predict-like method on {type(obj).__qualname__} "
                f"(looked for {', '.join(PREDICT_METHODS)} and __call__); pass methods=[...]"
            )
    else:
        if isinstance(methods, str):
            raise TypeError("modelotel.wrap: methods= must be a sequence of names, not one str")
        names = tuple(methods)
        for m in names:
            if m == "__call__":
                if not callable(obj):
                    raise ValueError(f"modelotel.wrap: {type(obj).__qualname__} is not callable")
            elif not callable(getattr(obj, m, None)):
                raise ValueError(f"modelotel.wrap: {type(obj).__qualname__} has no method {m!r}")
    if not _state.ENABLED:
        return obj
    return _ModelProxy(obj, names, config, framework)  # type: ignore[return-value]
