"""Which methods ``wrap()`` instruments on a model object, per framework, without importing one.

Example:
    >>> from sklearn.linear_model import LinearRegression
    >>> from modelotel._frameworks import choose
    >>> c = choose(LinearRegression())
    >>> c.framework, c.methods, c.rule
    ('sklearn', ('predict',), 'scikit-learn API')

A framework is recognised by the modules and names of the classes in ``type(obj).__mro__``
(``xgboost.core.Booster``, ``torch.nn.modules.module.Module``, ...), so ``import modelotel``
imports none of them and a model of a framework that is not installed costs nothing. The
first of the chosen methods is the *primary* one (its calls feed the statistics); the
defaults put first the method a server calls with the data modelotel reads:

=========================================  ==============================================
model                                      methods, primary first
=========================================  ==============================================
``xgboost.Booster``                        ``inplace_predict``, ``predict`` (``predict``
                                           takes a ``DMatrix``; ``inplace_predict`` the
                                           array or DataFrame itself)
``lightgbm.Booster``                       ``predict``
scikit-learn estimators and pipelines,     ``predict``, ``predict_proba``,
XGBoost / LightGBM scikit-learn API,       ``predict_log_proba``, ``decision_function``
CatBoost models                            (those that exist)
``torch.nn.Module``                        ``__call__`` (not ``forward``)
Hugging Face pipelines                     ``__call__``
anything else                              :data:`PREDICT_METHODS` that exist, else
                                           ``__call__``
=========================================  ==============================================
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

#: Predict-like method names, in the order they are looked for (duck typing; no imports).
PREDICT_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "inplace_predict",  # XGBoost Booster
)

#: scikit-learn's predict methods, in the order of :data:`PREDICT_METHODS`: labels (or values)
#: first, so a classifier's statistics are of what ``predict`` returns unless told otherwise.
SKLEARN_METHODS = PREDICT_METHODS[:4]

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

#: (class in the MRO, rule name, methods in order): the first class found decides. The
#: sklearn-like rows list candidates; only those the object has are kept.
_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("xgboost.core.Booster", "xgboost.Booster", ("inplace_predict", "predict")),
    ("lightgbm.basic.Booster", "lightgbm.Booster", ("predict",)),
    # not forward: calling it skips the module's hooks, and libraries (accelerate, peft)
    # replace it on the instance, which a method bound on the proxy would not follow
    ("torch.nn.modules.module.Module", "torch.nn.Module", ("__call__",)),
    ("catboost.core.CatBoost", "CatBoost", SKLEARN_METHODS),
    ("xgboost.sklearn.XGBModel", "XGBoost scikit-learn API", SKLEARN_METHODS),
    ("lightgbm.sklearn.LGBMModel", "LightGBM scikit-learn API", SKLEARN_METHODS),
    ("sklearn.base.BaseEstimator", "scikit-learn API", SKLEARN_METHODS),
)

#: Rule names of the models whose first found method by plain duck typing is not the one
#: the defaults make primary: wrap() says so once, at INFO.
_REORDERED = frozenset({"xgboost.Booster"})


@dataclass(frozen=True)
class Choice:
    """What ``wrap()`` instruments on one model object.

    Attributes:
        framework: ``ml.model.framework`` (``xgboost``, ``pytorch``, ...; ``""`` unknown).
        methods: the method names, the primary one first (empty: none found).
        rule: which default chose them (``"xgboost.Booster"``, ``"duck typing"``, ...;
            ``"methods="`` when the caller listed them).
        reordered: the default's primary is not the first method plain duck typing finds.
    """

    framework: str
    methods: tuple[str, ...]
    rule: str
    reordered: bool = False

    @property
    def primary(self) -> str:
        return self.methods[0] if self.methods else ""


def framework_of(obj: Any) -> str:
    """The ML framework of ``obj``'s class (first known top-level package in its MRO)."""
    for cls in type(obj).__mro__:
        top = (getattr(cls, "__module__", "") or "").split(".", 1)[0]
        if top in _FRAMEWORKS:
            return _FRAMEWORKS[top]
    return ""


def _mro_names(obj: Any) -> list[str]:
    return [f"{c.__module__}.{c.__qualname__}" for c in type(obj).__mro__]


def _has_method(obj: Any, name: str) -> bool:
    try:
        # hasattr-like: scikit-learn hides unavailable methods (available_if) by raising
        return callable(getattr(obj, name, None))
    except Exception:  # noqa: BLE001 - a property that raises is not a predict method
        return False


def _duck_typed(obj: Any) -> tuple[str, ...]:
    found = tuple(m for m in PREDICT_METHODS if _has_method(obj, m))
    if found:
        return found
    return ("__call__",) if callable(obj) else ()


def choose(obj: Any) -> Choice:
    """The framework default for ``obj`` (see the module doc), or plain duck typing."""
    framework = framework_of(obj)
    names = _mro_names(obj)
    if any(n.startswith("transformers.pipelines.") and n.endswith("Pipeline") for n in names):
        return Choice(framework, ("__call__",), "Hugging Face pipeline")
    for cls, rule, candidates in _RULES:
        if cls in names:
            methods = tuple(
                m for m in candidates if (m == "__call__" and callable(obj)) or _has_method(obj, m)
            )
            if methods:
                return Choice(framework, methods, rule, rule in _REORDERED)
    methods = _duck_typed(obj)
    return Choice(framework, methods, "callable" if methods == ("__call__",) else "duck typing")


def find_predict_methods(obj: Any) -> tuple[str, ...]:
    """The names of ``obj``'s predict-like methods, the primary one first (:func:`choose`)."""
    return choose(obj).methods


def unreadable_primary(obj: Any, choice: Choice) -> str:
    """Why the statistics cannot read what the primary method is given, or ``""``.

    Only what is known from the framework alone: an ``xgboost.Booster``'s ``predict`` takes
    a ``DMatrix``, whose values only xgboost >= 2.0 hands out (``DMatrix.get_data``).
    """
    if choice.primary == "predict" and "xgboost.core.Booster" in _mro_names(obj):
        xgb_core = sys.modules.get("xgboost.core")  # loaded: obj is one of its classes
        dmatrix = getattr(xgb_core, "DMatrix", None)
        if dmatrix is not None and not callable(getattr(dmatrix, "get_data", None)):
            return ("this xgboost's DMatrix has no get_data() (xgboost >= 2.0 has it): the "
                    "statistics skip DMatrix inputs (stats.unreadable_framework_data)")
    return ""


__all__ = [
    "PREDICT_METHODS",
    "SKLEARN_METHODS",
    "Choice",
    "choose",
    "find_predict_methods",
    "framework_of",
    "unreadable_primary",
]
