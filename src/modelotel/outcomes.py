"""Outcomes: labels that arrive after the prediction, joined to it by prediction id.

Example:
    >>> import modelotel
    >>> modelotel.record_outcome("0123456789abcdef", 1, model="churn", version="3")

``record_outcome`` always emits an ``ml.prediction.outcome`` log record. If the prediction
is still in this process's bounded cache (filled by the payload hook for models declared
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
import os
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
from opentelemetry._logs import SeverityNumber
from opentelemetry.metrics import CallbackOptions, Observation

from modelotel import _state
from modelotel import attributes as tn
from modelotel._payload.rules import WITHHELD, Rules, rules_for
from modelotel._safety import count_skipped, guard, health
from modelotel._version import __version__
from modelotel.environment_variables import (
    MODELOTEL_OUTCOME_CACHE_SIZE,
    MODELOTEL_OUTCOME_MAX_CLASSES,
    MODELOTEL_OUTCOME_RECORD_VALUES,
)

__all__ = ["record_outcome"]

DEFAULT_CACHE_SIZE = 10_000
#: Default most distinct class labels per model version on ``ml.outcome.class``; the rest
#: count as :data:`OTHER_CLASS` (``MODELOTEL_OUTCOME_MAX_CLASSES``).
MAX_CLASSES = 100
#: The class of labels beyond the cap (the same name as ``error.type``'s overflow).
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


_lock = threading.Lock()
_caches: dict[tuple[str, str], PredictionCache] = {}
_totals: dict[tuple[str, str], _Totals] = {}
#: (generation, {name: instrument, "logger": logger}) for the current generation; swapped
#: whole, never mutated, so a reader holds a consistent dict.
_inst: tuple[int, dict[str, Any]] = (-1, {})
# Creating instruments takes the SDK's measurement-consumer lock, which a collection holds
# while it runs _Instruments.observe_accuracy (that takes _lock): never create them under
# _lock, or a collection and the first outcome of a generation can deadlock.
_inst_lock = threading.Lock()


def cache_size() -> int:
    """Cache size from ``MODELOTEL_OUTCOME_CACHE_SIZE`` (default 10,000; 0 turns it off)."""
    raw = os.environ.get(MODELOTEL_OUTCOME_CACHE_SIZE)
    if raw is None or not raw.strip():
        return DEFAULT_CACHE_SIZE
    try:
        size = int(raw)
        if size < 0:
            raise ValueError(raw)
    except ValueError:
        health.warn_once(
            "env:" + MODELOTEL_OUTCOME_CACHE_SIZE,
            "modelotel: %s=%r is not a non-negative integer; using %d",
            MODELOTEL_OUTCOME_CACHE_SIZE,
            raw,
            DEFAULT_CACHE_SIZE,
        )
        return DEFAULT_CACHE_SIZE
    return size


def cache_for(
    model: str, version: str, task: str, size: int | None = None
) -> PredictionCache | None:
    """The cache of one model version (created once), or ``None`` when outcomes are off for it."""
    if task not in TASKS:
        return None
    size = cache_size() if size is None else size
    if size <= 0:
        return None
    key = (model, version)
    with _lock:
        cache = _caches.get(key)
        if cache is None or cache.task != task:
            cache = _caches[key] = PredictionCache(model, version, task, size)
        return cache


#: (record values, max classes) from the environment, read at the first outcome.
_settings: tuple[bool, int] | None = None


def _read_settings() -> tuple[bool, int]:
    global _settings
    settings = _settings
    if settings is None:
        settings = _settings = (_env_record_values(), _env_max_classes())
    return settings


def _env_record_values() -> bool:
    raw = os.environ.get(MODELOTEL_OUTCOME_RECORD_VALUES)
    value = "" if raw is None else raw.strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    health.warn_once(
        "env:" + MODELOTEL_OUTCOME_RECORD_VALUES,
        "modelotel: %s=%r is not one of true/false; outcome records keep their values",
        MODELOTEL_OUTCOME_RECORD_VALUES,
        raw,
    )
    return True


def _env_max_classes() -> int:
    raw = os.environ.get(MODELOTEL_OUTCOME_MAX_CLASSES)
    if raw is None or not raw.strip():
        return MAX_CLASSES
    try:
        n = int(raw)
        if n < 0:
            raise ValueError(raw)
    except ValueError:
        health.warn_once(
            "env:" + MODELOTEL_OUTCOME_MAX_CLASSES,
            "modelotel: %s=%r is not a non-negative integer; using %d",
            MODELOTEL_OUTCOME_MAX_CLASSES,
            raw,
            MAX_CLASSES,
        )
        return MAX_CLASSES
    return n


def _reset() -> None:
    global _inst, _settings
    with _lock:
        _caches.clear()
        _totals.clear()
        _inst = (-1, {})
        _settings = None


_state.on_reset(_reset)


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would deadlock the child; the accuracy
    # totals are the parent's, not this worker's.
    global _lock, _inst_lock, _inst
    _lock = threading.Lock()
    _inst_lock = threading.Lock()
    _totals.clear()
    _inst = (-1, {})


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Instruments:
    """The outcome instruments on one meter provider (built once per provider).

    Built through ``_state.per_meter_provider``: a generation bump on the same provider
    (``configure()`` attaching to it, a fork) must not register them again (the SDK keeps
    the first registration of a name). The accuracy gauge reports only while its provider
    is the one modelotel uses; it reports the process-wide totals.
    """

    def __init__(self, meter: Any) -> None:
        self.key: Any = None  # the meter provider key, set right after construction
        self.by_name: dict[str, Any] = {
            "count": meter.create_counter(
                tn.METRIC_OUTCOME_COUNT,
                unit="{outcome}",
                description="Outcomes matched to a prediction.",
            ),
            "correct": meter.create_counter(
                tn.METRIC_OUTCOME_CORRECT,
                unit="{outcome}",
                description="Classification outcomes equal to the prediction.",
            ),
            "classes": meter.create_counter(
                tn.METRIC_OUTCOME_CLASS,
                unit="{outcome}",
                description="Classification outcomes per actual class and result.",
            ),
            "abs_error": meter.create_histogram(
                tn.METRIC_OUTCOME_ABSOLUTE_ERROR,
                description="Regression outcomes: |predicted - actual|.",
            ),
            "unmatched": meter.create_counter(
                tn.METRIC_OUTCOME_UNMATCHED,
                unit="{outcome}",
                description="Outcomes whose prediction was not (or no longer) in the cache.",
            ),
            "accuracy": meter.create_observable_gauge(
                tn.METRIC_OUTCOME_ACCURACY,
                callbacks=[self.observe_accuracy],
                unit="1",
                description="Classification accuracy since the process started: correct / count.",
            ),
        }

    def observe_accuracy(self, options: CallbackOptions) -> Iterable[Observation]:
        with guard("outcomes.collect"):
            if _state.meter_provider_key() is not self.key:
                return []  # an old provider, still collected by someone
            with _lock:
                totals = list(_totals.values())
            return [Observation(t.correct / t.count, t.attrs) for t in totals if t.count]
        return []


def _instruments() -> dict[str, Any]:
    """This generation's instruments and outcome logger (instruments: once per provider)."""
    global _inst
    gen = _state.generation()
    cached_gen, inst = _inst
    if cached_gen == gen:
        return inst
    with _inst_lock:
        cached_gen, inst = _inst
        if cached_gen == gen:
            return inst
        per_provider, key = _state.per_meter_provider("modelotel.outcomes", _Instruments)
        per_provider.key = key
        logger = _state.logger_provider().get_logger(tn.SCOPE_NAME, __version__)
        inst = {**per_provider.by_name, "logger": logger}
        _inst = (gen, inst)
        return inst


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


def _find(
    prediction_id: str, model: str | None, version: str | None
) -> tuple[Any, PredictionCache | None]:
    with _lock:
        caches = [
            c
            for (m, v), c in _caches.items()
            if (model is None or m == model) and (version is None or v == version)
        ]
    for cache in caches:
        value = cache.pop(prediction_id)
        if value is not _NOT_KEPT:
            return value, cache
    return _NOT_KEPT, caches[0] if len(caches) == 1 else None


def _update(
    model: str, version: str, task: str, pairs: list[tuple[Any, Any]], rules: Rules
) -> None:
    inst = _instruments()
    attrs = {tn.ML_MODEL_NAME: model, tn.ML_MODEL_VERSION: version}
    key = (model, version)
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
            inst["abs_error"].record(err, attrs)
        if errors:
            inst["count"].add(len(errors), attrs)
        return
    correct = 0
    per_class: dict[tuple[str, bool], int] = {}
    max_classes = _read_settings()[1]
    # a label becomes a metric attribute value only after the model's redaction rules
    labels = [rules.label(a) if max_classes else OTHER_CLASS for _, a in pairs]
    with _lock:
        totals = _totals.get(key)
        if totals is None:
            totals = _totals[key] = _Totals(attrs)
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
    inst["count"].add(len(pairs), attrs)
    inst["correct"].add(correct, attrs)
    for (label, ok), n in per_class.items():
        inst["classes"].add(
            n,
            {
                **attrs,
                tn.ML_OUTCOME_CLASS: label,
                tn.ML_OUTCOME_RESULT: "correct" if ok else "incorrect",
            },
        )


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
    cached, cache = _find(prediction_id, model, version)
    matched = cached is not _NOT_KEPT
    if predicted is _UNSET:
        predicted = cached
    m = cache.model if cache is not None else (model or "")
    v = cache.version if cache is not None else (version or "")
    inst = _instruments()
    rules = rules_for(m, v)
    attrs: dict[str, Any] = {
        tn.ML_MODEL_NAME: m,
        tn.ML_MODEL_VERSION: v,
        tn.ML_PREDICTION_ID: prediction_id,
        tn.ML_OUTCOME_MATCHED: matched,
    }
    if _read_settings()[0]:
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
    inst["logger"].emit(
        event_name=tn.EVENT_PREDICTION_OUTCOME,
        severity_number=SeverityNumber.INFO,
        attributes=attrs,
    )
    metric_attrs = {tn.ML_MODEL_NAME: m, tn.ML_MODEL_VERSION: v}
    if predicted is _NOT_KEPT:
        inst["unmatched"].add(1, metric_attrs)
        return
    pairs = _pairs(predicted, actual)
    if not pairs:
        count_skipped(tn.REASON_OUTCOME_BAD_INPUT)
        inst["unmatched"].add(1, metric_attrs)
        return
    task = cache.task if cache is not None else _infer_task(pairs)
    _update(m, v, task, pairs, rules)
