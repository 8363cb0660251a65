"""``modelotel.wrap(model)``: instrument the predict methods of an existing model object.

Example:
    >>> from sklearn.linear_model import LogisticRegression
    >>> import modelotel
    >>> clf = modelotel.wrap(LogisticRegression(), model="churn", version="3")
    >>> isinstance(clf, LogisticRegression)
    True

The model is put inside a ``wrapt.ObjectProxy`` so it keeps passing ``isinstance`` checks
and behaves like itself; only its predict-like methods are replaced, on the proxy, by
functions instrumented like :func:`modelotel.instrument` does (:mod:`modelotel._instrument`),
so the model's internal calls (a ``predict`` that calls ``self.decision_function``) do not
make nested spans. The first method is the *primary* one: only its calls feed the
statistics, payloads and outcomes. Which methods, and in which order, is decided per
framework by :mod:`modelotel._frameworks` (an ``xgboost.Booster`` serves with
``inplace_predict``, not ``predict``), unless the caller lists them with ``methods=``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import wrapt

from modelotel._frameworks import (
    PREDICT_METHODS,
    Choice,
    choose,
    find_predict_methods,
    unreadable_primary,
)
from modelotel._instrument import _decorate, _instrument_with, _is_instrumented
from modelotel._mlflow import is_pyfunc_model, pyfunc_framework, pyfunc_registered_model
from modelotel._options import ModelConfig, ModelOptions, model_config
from modelotel._runtime import runtime

if TYPE_CHECKING:
    from typing_extensions import Unpack

T = TypeVar("T")

_logger = logging.getLogger("modelotel")

#: (class, methods) already described in the log: wrap() may run per request in some code,
#: and the line says the same thing every time
_described: set[tuple[str, tuple[str, ...]]] = set()


class _ModelProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A model object with its predict-like methods instrumented.

    ``isinstance`` and attribute access behave as on the original (wrapt proxy); only the
    listed methods are replaced, on the proxy, so the model's internal calls (a
    ``predict`` that calls ``self.decision_function``) do not make nested spans.
    The first listed method is the primary one: only its calls feed the statistics, the
    payload sampler and the outcome cache; every method's span carries ``ml.model.method``.
    """

    __modelotel_proxy__ = True  # PROXY_ATTR: _is_instrumented() knows a wrapped model by it

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
        return _rewrap(
            copy.copy(self.__wrapped__),
            self._self_method_names,
            self._self_config,
            self._self_framework,
        )

    def __deepcopy__(self, memo: Any) -> Any:
        return _rewrap(
            copy.deepcopy(self.__wrapped__, memo),
            self._self_method_names,
            self._self_config,
            self._self_framework,
        )


def _rewrap(obj: Any, methods: tuple[str, ...], config: ModelConfig, framework: str) -> Any:
    """Unpickling / copy helper for :class:`_ModelProxy`."""
    return _ModelProxy(obj, methods, config, framework)


def _describe(obj: Any, choice: Choice, model: str) -> None:
    """Log once per (class, methods) which method is primary and what chose it.

    INFO when a framework default moved the primary method (an ``xgboost.Booster``) or the
    primary's inputs cannot be read; DEBUG for every other choice. Never per call.
    """
    cls = type(obj)
    key = (f"{cls.__module__}.{cls.__qualname__}", choice.methods)
    if key in _described:
        return
    _described.add(key)
    problem = unreadable_primary(obj, choice)
    level = logging.INFO if (choice.reordered or problem) else logging.DEBUG
    if not _logger.isEnabledFor(level):
        return
    how = "methods=" if choice.rule == "methods=" else f"the {choice.rule} default"
    _logger.log(
        level,
        "modelotel.wrap: %s (model %r): primary method %s, chosen by %s (also instrumented: "
        "%s); only %s calls feed the statistics%s",
        cls.__qualname__,
        model,
        choice.primary,
        how,
        ", ".join(choice.methods[1:]) or "none",
        choice.primary,
        f"; {problem}" if problem else "",
    )


def wrap(
    obj: T,
    *,
    model: str | None = None,
    methods: Sequence[str] | None = None,
    **options: Unpack[ModelOptions],
) -> T:
    """Instrument an existing model object without editing its code.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> import modelotel
        >>> clf = modelotel.wrap(LogisticRegression(), model="churn", version="3")
        >>> isinstance(clf, LogisticRegression)
        True

    Args:
        obj: a scikit-learn / XGBoost / LightGBM / CatBoost model, a PyTorch ``nn.Module``, a
            Hugging Face pipeline, or any callable. A plain function is instrumented like
            :func:`instrument` would.
        model: model name; defaults to the class name (for a loaded MLflow pyfunc model
            that is registered, the registered name: see ``**options``).
        methods: names of the methods to instrument, the *primary* one first; by default
            the framework's (:mod:`modelotel._frameworks`, found from the class's module,
            without importing the framework): ``inplace_predict`` then ``predict`` for an
            ``xgboost.Booster`` (``predict`` takes a ``DMatrix``); ``predict`` for a
            ``lightgbm.Booster``; ``predict``, ``predict_proba``, ``predict_log_proba``,
            ``decision_function`` (those that exist) for scikit-learn estimators and
            pipelines, the XGBoost and LightGBM scikit-learn API and CatBoost; ``__call__``
            for a PyTorch ``nn.Module`` (not ``forward``: calling it skips the module's
            hooks) and for Hugging Face pipelines; otherwise whichever of
            :data:`PREDICT_METHODS` exist, else ``__call__``. Only calls of the primary
            method feed the input and output statistics, drift, checks, payload sampling,
            the outcome cache and :func:`modelotel.last_prediction_id`, so class labels
            from ``predict`` are not mixed with probabilities from ``predict_proba`` and a
            batch passed to both is counted once. Every method gets spans (with
            ``ml.model.method``) and the serving metrics; ``ml.model.info`` carries the
            primary one in ``ml.model.method``. A caller that only uses ``predict_proba``
            passes ``methods=["predict_proba", "predict"]`` to make it the primary one.
            The choice is logged once per class on the ``modelotel`` logger: INFO when a
            framework default moved the primary method or its inputs cannot be read, else
            DEBUG.
        **options: as for :func:`instrument` (see :class:`modelotel.ModelOptions`). An
            ``mlflow.pyfunc.PyFuncModel`` registered in the MLflow model registry gets its
            registered name and version (``ml.model.name``, ``ml.model.version``) from the
            registry, found by its run and model id, unless ``model_uri=`` or ``version=``
            is given; ``model_uri="models:/NAME/VERSION"`` or ``"models:/NAME@ALIAS"`` names
            them for any model.

    Returns:
        A proxy that passes ``isinstance`` checks and behaves like ``obj``, with its predict
        methods instrumented (or ``obj`` itself when modelotel is disabled).

    Raises:
        TypeError: no predict-like method was found, or an option is invalid.
        ValueError: a name in ``methods`` is not a method of ``obj``, or an option is invalid
            (a ``model_uri=`` the registry cannot resolve, a ``model=`` or ``version=`` that
            contradicts it, a pyfunc model registered more than once).
    """
    if _is_instrumented(obj):
        return obj  # already wrapped: a no-op, not a second span
    if inspect.isfunction(obj) or inspect.ismethod(obj) or isinstance(obj, functools.partial):
        return _decorate(obj, model, options)  # type: ignore[no-any-return]
    pyfunc = is_pyfunc_model(obj)
    if pyfunc and options.get("model_uri") is None and options.get("version") is None:
        # the registry knows the name and version this model was registered as
        registered = pyfunc_registered_model(obj)
        if registered is not None:
            options["model_uri"] = registered.uri
    if "tokenizer" not in options and type(obj).__module__.startswith("transformers"):
        # a Hugging Face pipeline carries the tokenizer its texts are served with
        found = getattr(obj, "tokenizer", None)
        if found is not None:
            options["tokenizer"] = found
    config = model_config(model=model, default_model=type(obj).__qualname__, **options)
    choice = choose(obj)
    if pyfunc:  # ml.model.framework: the flavor under the pyfunc model (sklearn, ...)
        choice = dataclasses.replace(choice, framework=pyfunc_framework(obj))
    if methods is None:
        if not choice.methods:
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
        choice = Choice(choice.framework, names, "methods=")
    if not runtime.enabled:
        return obj
    _describe(obj, choice, config.model)
    return _ModelProxy(obj, choice.methods, config, choice.framework)  # type: ignore[return-value]


__all__ = ["PREDICT_METHODS", "find_predict_methods", "wrap"]
