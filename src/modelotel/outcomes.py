"""Outcomes: labels that arrive after the prediction, joined to it by prediction id.

Example:
    >>> import modelotel
    >>> modelotel.record_outcome("0123456789abcdef", 1, model="churn", version="3")

``record_outcome`` always emits an ``ml.prediction.outcome`` log record. If the prediction
is still in this process's bounded cache (filled by each model's outcome part for models declared
with ``task="classification"`` or ``task="regression"``), or ``predicted=`` is given, it
also updates the performance metrics of that model version:

- classification: ``ml.outcome.count``, ``ml.outcome.correct``, ``ml.outcome.accuracy``
  (gauge: correct / count since the process started), ``ml.outcome.class`` (per actual
  label and result);
- regression: ``ml.outcome.count`` and ``ml.outcome.absolute_error`` (histogram);
- otherwise ``ml.outcome.unmatched``.

What the cache keeps (cheap, per call): a scalar output (bool, int, float, a string of at
most 256 characters, a numpy scalar) as is, a list / tuple / 1-D numpy array of at most 64
scalars as a tuple copy. Anything else is not kept. See ``docs/payloads.md``.

Labels and predicted values pass the model's payload redaction rules (the built-in patterns
for a model without payload capture; ``modelotel._payload.rules``) before they go on the
record or become a metric attribute. ``MODELOTEL_OUTCOME_RECORD_VALUES=false`` keeps them
out of the records (metrics only); ``MODELOTEL_OUTCOME_MAX_CLASSES`` caps the label values
on ``ml.outcome.class`` (``_OTHER`` beyond).
"""

from __future__ import annotations

import json
import math
import threading
from typing import Any, Protocol

import numpy as np
from opentelemetry._logs import SeverityNumber

from modelotel import attributes as tn
from modelotel._instruments import OUTCOMES, Instruments
from modelotel._instruments import ensure as ensure_instruments
from modelotel._payload.rules import WITHHELD, Rules, default_rules
from modelotel._runtime import runtime
from modelotel._safety import count_skipped, guard
from modelotel._types import Ended
from modelotel._version import __version__

__all__ = ["record_outcome"]

#: The class of labels beyond ``MODELOTEL_OUTCOME_MAX_CLASSES`` (the name of ``error.type``'s
#: overflow too).
OTHER_CLASS = "_OTHER"
_MAX_STR = 256
_MAX_BATCH = 64
TASKS = ("classification", "regression")

_NOT_KEPT = object()
_UNSET: Any = object()


_PLAIN_TYPES = frozenset((float, int, bool))


def _cacheable(value: Any) -> Any:
    """The value to keep for ``value``, or ``_NOT_KEPT`` (cheap: type checks, small copies)."""
    t = type(value)
    if t is float or t is int or t is bool:
        return value
    if t is str:
        return value if len(value) <= _MAX_STR else _NOT_KEPT
    if isinstance(value, np.generic):
        return value.item() if value.dtype.kind in "biufU" else _NOT_KEPT
    if t is list or t is tuple:
        if len(value) > _MAX_BATCH:
            return _NOT_KEPT
        if set(map(type, value)) <= _PLAIN_TYPES:  # the common case (~0.1 us for 2 items)
            return tuple(value)
        # scalars only: a kept row list, array or tensor would alias the caller's object
        # (mutated after the call) and keep its memory (GPU memory too) alive in the cache
        kept = []
        for v in value:
            k = _cacheable(v) if type(v) is not list and type(v) is not tuple else _NOT_KEPT
            if k is _NOT_KEPT or type(k) is tuple:
                return _NOT_KEPT
            kept.append(k)
        return tuple(kept)
    if t is np.ndarray:
        if value.ndim <= 1 and value.size <= _MAX_BATCH and value.dtype.kind in "biufU":
            return tuple(value.tolist()) if value.ndim else value.item()
        return _NOT_KEPT
    return _NOT_KEPT


class PredictionCache:
    """Bounded map prediction id -> predicted value of one model version.

    Two generations of plain dicts: ``put`` writes into the current one; when it holds
    ``size // 2`` entries it becomes the previous one (the older previous is dropped whole).
    So the cache keeps at least the ``size // 2`` and at most the ``size`` most recent
    predictions, and a put is one dict store and one length check (no per-entry eviction).
    """

    __slots__ = ("_cur", "_half", "_prev", "model", "size", "task", "version")

    def __init__(self, model: str, version: str, task: str, size: int) -> None:
        self.model = model
        self.version = version
        self.task = task
        self.size = size
        self._half = max(1, size // 2)
        self._cur: dict[str, Any] = {}
        self._prev: dict[str, Any] = {}

    def put(self, prediction_id: str, outputs: Any) -> None:
        """Keep ``outputs`` if cheap (see the module docstring)."""
        value = _cacheable(outputs)
        if value is _NOT_KEPT:
            return
        cur = self._cur
        cur[prediction_id] = value
        if len(cur) >= self._half:
            self._prev, self._cur = cur, {}

    def end(self, prediction: Ended) -> None:
        """The outcome part's share of an ended prediction: keep its outputs (see :meth:`put`)."""
        self.put(prediction.prediction_id, prediction.outputs)

    def reset(self) -> None:
        """Forget every kept prediction."""
        self._cur = {}
        self._prev = {}

    def pop(self, prediction_id: str) -> Any:
        """The kept prediction (removed: each is matched once), or ``_NOT_KEPT``."""
        value = self._cur.pop(prediction_id, _NOT_KEPT)
        if value is _NOT_KEPT:
            value = self._prev.pop(prediction_id, _NOT_KEPT)
        return value

    def __len__(self) -> int:
        return len(self._cur) + len(self._prev)


class _Totals:
    __slots__ = ("attrs", "classes", "correct", "count")

    def __init__(self, attrs: dict[str, str]) -> None:
        self.attrs = attrs
        self.count = 0
        self.correct = 0
        self.classes: set[str] = set()


def cache_for(model: str, version: str, task: str, size: int) -> PredictionCache | None:
    """The outcome part of one model version, or None when outcomes are off for it.

    A model keeps its predictions for outcomes only when it declared a task that outcomes
    can score (``classification``, ``regression``) and the cache size
    (``MODELOTEL_OUTCOME_CACHE_SIZE``) is not 0.
    """
    if task not in TASKS or size <= 0:
        return None
    return PredictionCache(model, version, task, size)


class _HasCache(Protocol):
    """A registered model as the outcome book sees it (:class:`modelotel._monitor.ModelMonitor`)."""

    outcome_cache: PredictionCache | None
    outcome_rules: Rules


class OutcomeBook:
    """The process-wide state of outcomes: accuracy totals per model version, the logger.

    One per process, in the runtime's stores. The predictions themselves are kept by each
    model's :class:`PredictionCache` (its outcome part); the book finds them through the
    runtime's registry of models.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._totals: dict[tuple[str, str], _Totals] = {}
        self._logger: tuple[int, Any] = (-1, None)

    def reset(self) -> None:
        with self.lock:
            self._totals = {}
            self._logger = (-1, None)

    def after_fork(self) -> None:
        # a lock held by another thread at fork time would deadlock the child; the accuracy
        # totals are the parent's, not this worker's
        self.lock = threading.Lock()
        self._totals = {}
        self._logger = (-1, None)

    def logger(self) -> Any:
        """The outcome logger of the current generation (taken anew when providers change)."""
        gen = runtime.generation
        cached_gen, logger = self._logger
        if cached_gen != gen:
            logger = runtime.logger_provider().get_logger(tn.SCOPE_NAME, __version__)
            self._logger = (gen, logger)
        return logger

    def accuracy(self) -> list[tuple[float, dict[str, Any]]]:
        """``(correct / count, attributes)`` per classification model version with outcomes."""
        with self.lock:
            totals = list(self._totals.values())
        return [(t.correct / t.count, t.attrs) for t in totals if t.count]

    def find(
        self, prediction_id: str, model: str | None, version: str | None
    ) -> tuple[Any, PredictionCache | None]:
        """The kept prediction of ``prediction_id`` (popped) and the cache it was in."""
        models: list[_HasCache] = list(runtime.models.values())
        caches = [
            c
            for c in (m.outcome_cache for m in models)
            if c is not None
            and (model is None or c.model == model)
            and (version is None or c.version == version)
        ]
        for cache in caches:
            value = cache.pop(prediction_id)
            if value is not _NOT_KEPT:
                return value, cache
        return _NOT_KEPT, caches[0] if len(caches) == 1 else None

    def rules(self, model: str, version: str) -> Rules:
        """The rules outcomes of a model version pass (the built-in ones for a model this
        process never built)."""
        found: _HasCache | None = runtime.models.get((model, version))
        return found.outcome_rules if found is not None else default_rules()

    def score(self, inst: Instruments, model: str, version: str, task: str,
              pairs: list[tuple[Any, Any]], rules: Rules) -> None:
        """Update the ``ml.outcome.*`` metrics of one model version with matched pairs."""
        attrs = {tn.ML_MODEL_NAME: model, tn.ML_MODEL_VERSION: version}
        if task == "regression":
            errors: list[float] = []
            for p, a in pairs:
                try:
                    err = abs(float(p) - float(a))
                except (TypeError, ValueError):
                    continue
                if math.isfinite(err):
                    errors.append(err)
            if len(errors) < len(pairs):
                count_skipped(tn.REASON_OUTCOME_BAD_INPUT, len(pairs) - len(errors))
            for err in errors:
                inst.outcome_abs_error.record(err, attrs)
            if errors:
                inst.outcome_count.add(len(errors), attrs)
            return
        correct = 0
        per_class: dict[tuple[str, bool], int] = {}
        max_classes = runtime.settings.outcome_max_classes
        # a label becomes a metric attribute value only after the model's redaction rules
        labels = [rules.label(a) if max_classes else OTHER_CLASS for _, a in pairs]
        with self.lock:
            totals = self._totals.get((model, version))
            if totals is None:
                totals = self._totals[(model, version)] = _Totals(attrs)
            for (p, a), label in zip(pairs, labels, strict=True):
                ok = bool(p == a)
                correct += ok
                if label not in totals.classes:
                    if len(totals.classes) >= max_classes:
                        label = OTHER_CLASS
                    else:
                        totals.classes.add(label)
                per_class[(label, ok)] = per_class.get((label, ok), 0) + 1
            totals.count += len(pairs)
            totals.correct += correct
        inst.outcome_count.add(len(pairs), attrs)
        inst.outcome_correct.add(correct, attrs)
        for (label, ok), n in per_class.items():
            inst.outcome_class.add(
                n,
                {
                    **attrs,
                    tn.ML_OUTCOME_CLASS: label,
                    tn.ML_OUTCOME_RESULT: "correct" if ok else "incorrect",
                },
            )


def book() -> OutcomeBook:
    """The outcome book of this process (made on first use)."""
    return runtime.store(OUTCOMES, OutcomeBook)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _attr(rules: Rules, value: Any) -> tuple[Any, bool]:
    """``(attribute value, changed)`` of a label or prediction after the model's rules.

    Primitives stay primitives, anything else becomes JSON text; the attribute value is
    ``None`` when the rules withhold the value (it is then left off the record).
    """
    plain, changed = rules.value(value)
    if plain is WITHHELD:
        return None, True
    if isinstance(plain, (bool, int, float, str)):
        return plain, changed
    return json.dumps(plain, ensure_ascii=False, allow_nan=False), changed


def _pairs(predicted: Any, actual: Any) -> list[tuple[Any, Any]] | None:
    predicted = _plain(predicted)
    actual = _plain(actual)
    if isinstance(predicted, (tuple, list)):
        if isinstance(actual, (tuple, list)):
            if len(actual) != len(predicted):
                return None
            return [(_plain(p), _plain(a)) for p, a in zip(predicted, actual, strict=True)]
        if len(predicted) == 1:
            return [(_plain(predicted[0]), actual)]
        return None
    if isinstance(actual, (tuple, list)):
        return [(predicted, _plain(actual[0]))] if len(actual) == 1 else None
    return [(predicted, actual)]


def _infer_task(pairs: list[tuple[Any, Any]]) -> str:
    for p, a in pairs:
        for v in (p, a):
            if isinstance(v, float) and not float(v).is_integer():
                return "regression"
    return "classification"


def record_outcome(
    prediction_id: str,
    actual: Any,
    *,
    model: str | None = None,
    version: str | None = None,
    predicted: Any = _UNSET,
) -> None:
    """Record the actual outcome (label) of an earlier prediction. Never raises.

    Args:
        prediction_id: The call's prediction id (``call.prediction_id``; ``ml.prediction.id``
            on its span and payload record).
        actual: The true label (classification) or value (regression); for a batch
            prediction, a sequence of the same length.
        model: The model name; ``None`` searches every model's cache.
        version: The model version; ``None`` searches every version of ``model``.
        predicted: The predicted value, when this process did not make the prediction (or
            the cache no longer has it): the metrics are updated from it.
    """
    with guard("outcomes"):
        _record(prediction_id, actual, model, version, predicted)


def _record(prediction_id: Any, actual: Any, model: Any, version: Any, predicted: Any) -> None:
    if not isinstance(prediction_id, str) or not prediction_id:
        count_skipped(tn.REASON_OUTCOME_BAD_INPUT)
        return
    model = None if model is None else str(model)
    version = None if version is None else str(version)
    outcomes = book()
    cached, cache = outcomes.find(prediction_id, model, version)
    matched = cached is not _NOT_KEPT
    if predicted is _UNSET:
        predicted = cached
    m = cache.model if cache is not None else (model or "")
    v = cache.version if cache is not None else (version or "")
    rules = outcomes.rules(m, v)
    attrs: dict[str, Any] = {
        tn.ML_MODEL_NAME: m,
        tn.ML_MODEL_VERSION: v,
        tn.ML_PREDICTION_ID: prediction_id,
        tn.ML_OUTCOME_MATCHED: matched,
    }
    if runtime.settings.outcome_record_values:
        values = [(tn.ML_OUTCOME_ACTUAL, actual)]
        if predicted is not _NOT_KEPT:
            values.append((tn.ML_OUTCOME_PREDICTED, predicted))
        redacted = False
        for name, value in values:
            text, changed = _attr(rules, value)
            redacted = redacted or changed
            if text is not None:
                attrs[name] = text
        if redacted:
            attrs[tn.ML_OUTCOME_REDACTED] = True
    outcomes.logger().emit(
        event_name=tn.EVENT_PREDICTION_OUTCOME,
        severity_number=SeverityNumber.INFO,
        attributes=attrs,
    )
    inst = ensure_instruments()
    if inst is None:  # being made on a helper thread (a collection is running): log only
        return
    metric_attrs = {tn.ML_MODEL_NAME: m, tn.ML_MODEL_VERSION: v}
    if predicted is _NOT_KEPT:
        inst.outcome_unmatched.add(1, metric_attrs)
        return
    pairs = _pairs(predicted, actual)
    if not pairs:
        count_skipped(tn.REASON_OUTCOME_BAD_INPUT)
        inst.outcome_unmatched.add(1, metric_attrs)
        return
    task = cache.task if cache is not None else _infer_task(pairs)
    outcomes.score(inst, m, v, task, pairs, rules)
