"""Input/output statistics of one model as OpenTelemetry data: the thin adapter over
:mod:`modelotel.stats.profiler`.

Example:
    >>> import numpy as np, modelotel
    >>> from modelotel.testing import capture
    >>> @modelotel.instrument(model="doc-stats", feature_names=["a", "b"])
    ... def predict(X):
    ...     return X[:, 0] * 2.0
    >>> with capture() as cap:
    ...     _ = predict(np.array([[1.0, 2.0], [3.0, np.nan]]))
    ...     cap.metric("ml.feature.count", **{"ml.feature": "b"}).value
    2

A :class:`StatsPart` is one model's statistics part (:class:`modelotel._types.Part`). Per
prediction, :meth:`StatsPart.end` hands the input and output to the model's
:class:`~modelotel.stats.profiler.Profiler` and turns what it returns into telemetry: skip
reasons into ``ml.telemetry.skipped`` / ``ml.telemetry.dropped``, each check that fired into
a span event, ``checks_fired`` and ``ml.check.violations``, a row-sampling rate into
``ml.stats.sample_rate`` on the span. Nothing at all when the profiler returns nothing, the
common case.

At each metric collection the first stats callback closes the window of every part
(:meth:`StatsPart.begin_collection`); the part turns the profiler's snapshot into the points
that every callback of that collection reads (:meth:`StatsPart.points`), with the metric
attributes of each column built once per schema:

- additive counters (running totals, so replicas sum exactly): ``ml.feature.count``
  (values seen), ``ml.feature.missing{ml.missing.kind}``, ``ml.feature.bin{ml.bin}`` and the
  ``ml.output.*`` equivalents, ``ml.check.violations{ml.check, ml.feature}``;
- gauges of the closed window: ``ml.feature.mean / stddev / min / max`` and
  ``ml.feature.drift{ml.drift.method}`` (and ``ml.output.*``).

The instruments themselves live in :mod:`modelotel._instruments`, with every other one.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._options import ModelConfig
from modelotel._runtime import runtime
from modelotel._safety import count_dropped, count_skipped, health
from modelotel._types import MISSING, Ended
from modelotel.stats.baseline import Baseline, resolve
from modelotel.stats.profiler import Profiler, Report
from modelotel.stats.reasons import DROP_ROW_CAP, SKIP_MAX_FEATURES
from modelotel.stats.window import (
    CATEGORICAL_DRIFT,
    MAX,
    MEAN,
    MIN,
    NUMERIC_DRIFT,
    STDDEV,
    SideSummary,
    Snapshot,
)

Attributes = dict[str, Any]
Points = Sequence[tuple[float, Mapping[str, Any]]]

_KINDS = (A.MISSING_NULL, A.MISSING_NAN, A.MISSING_INF)


class _Names:
    """The metric names of one side (inputs: ``ml.feature.*``, outputs: ``ml.output.*``)."""

    __slots__ = ("attr", "bin", "count", "drift", "gauges", "missing")

    def __init__(self, output: bool) -> None:
        if output:
            self.attr = A.ML_OUTPUT
            self.count, self.missing, self.bin = (
                A.METRIC_OUTPUT_COUNT, A.METRIC_OUTPUT_MISSING, A.METRIC_OUTPUT_BIN)
            self.drift = A.METRIC_OUTPUT_DRIFT
            self.gauges = {MEAN: A.METRIC_OUTPUT_MEAN, STDDEV: A.METRIC_OUTPUT_STDDEV,
                           MIN: A.METRIC_OUTPUT_MIN, MAX: A.METRIC_OUTPUT_MAX}
        else:
            self.attr = A.ML_FEATURE
            self.count, self.missing, self.bin = (
                A.METRIC_FEATURE_COUNT, A.METRIC_FEATURE_MISSING, A.METRIC_FEATURE_BIN)
            self.drift = A.METRIC_FEATURE_DRIFT
            self.gauges = {MEAN: A.METRIC_FEATURE_MEAN, STDDEV: A.METRIC_FEATURE_STDDEV,
                           MIN: A.METRIC_FEATURE_MIN, MAX: A.METRIC_FEATURE_MAX}


_NAMES = (_Names(False), _Names(True))


class _Labels:
    """The metric attributes of one side's columns, built once per schema."""

    __slots__ = ("bins", "by_name", "columns", "drift", "missing", "plan")

    def __init__(self, base: Mapping[str, Any], attr: str, summary: SideSummary) -> None:
        plan = summary.plan
        self.plan = plan
        names = plan.numeric + plan.categorical
        self.columns: list[Attributes] = [{**base, attr: n} for n in names]
        self.by_name = dict(zip(names, self.columns, strict=True))
        self.missing = [{k: {**a, A.ML_MISSING_KIND: k} for k in _KINDS} for a in self.columns]
        self.bins = [
            [{**a, A.ML_BIN: label} for label in labels]
            for a, labels in zip(self.columns, summary.bin_labels, strict=True)
        ]
        method = A.ML_DRIFT_METHOD
        self.drift: dict[tuple[str, str], Attributes] = {}
        for names_, methods in ((plan.numeric, NUMERIC_DRIFT),
                                (plan.categorical, CATEGORICAL_DRIFT)):
            for n in names_:
                a = self.by_name[n]
                for m in methods:
                    self.drift[n, m] = {**a, method: m}


class StatsPart:
    """The statistics of one model (see the module doc).

    Args:
        config: the model's config (baseline, feature names, ``max_features``, ``row_cap``).
        metric_attributes: the model's metric attributes (``ml.model.name`` / ``version``),
            the base of every point's attributes.

    Attributes:
        baseline: the resolved baseline, or None.
        profiler: the model's :class:`~modelotel.stats.profiler.Profiler`.
        generation: the provider generation the part started over for (:meth:`follow`);
            only the parts of the current generation report.
    """

    def __init__(self, config: ModelConfig, metric_attributes: Mapping[str, Any]) -> None:
        self.model = config.model
        self.baseline: Baseline | None = resolve(config.baseline)
        self.profiler = Profiler(self.baseline, config.feature_names, config.max_features,
                                 config.row_cap, absent=MISSING, tokenizer=config.tokenizer)
        self._observe = self.profiler.observe  # bound once: called on every prediction
        self._base: Attributes = dict(metric_attributes)
        self._lock = threading.Lock()  # violations, reset
        self._collect_lock = threading.Lock()
        self._labels: list[_Labels | None] = [None, None]
        self.generation = -1
        self._clear()
        self._count_cut(self.profiler.cut)

    def _clear(self) -> None:
        self._violations: dict[tuple[str, str, bool], int] = {}
        self._violation_attrs: dict[tuple[str, str, bool], Attributes] = {}
        self._points: dict[str, list[tuple[float, Attributes]]] = {}
        self._seen: tuple[tuple[int, ...], ...] = ()  # values seen per column at the last close
        self._consumed: set[int] | None = None  # callbacks that read the current points

    # ---- the Part protocol -----------------------------------------------------------
    def end(self, prediction: Ended) -> None:
        """Feed the windows with an ended prediction's input and output (if it succeeded)."""
        rep = self._observe(
            prediction.inputs, prediction.outputs if prediction.error is None else MISSING
        )
        if rep is not None:
            self._report(rep, prediction)

    def reset(self) -> None:
        """Forget every window, total and violation (new providers, a fork, a capture)."""
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        self.profiler.reset()
        self._clear()
        self._count_cut(self.profiler.cut)

    def follow(self, generation: int) -> None:
        """New providers (configure, capture, fork): start over, reported by the new ones."""
        with self._lock:
            if generation != self.generation:
                self._reset_locked()
                self.generation = generation

    # ---- per call --------------------------------------------------------------------
    def _report(self, rep: Report, prediction: Ended) -> None:
        skipped = rep.skipped
        if skipped:
            for reason, n in skipped.items():
                count_skipped(reason, n)
            cut = skipped.get(SKIP_MAX_FEATURES)
            if cut:
                self._warn_cut(cut)
        if rep.dropped:
            count_dropped(DROP_ROW_CAP, rep.dropped)
        if rep.sample_rate is not None:
            prediction.set_attribute(A.ML_STATS_SAMPLE_RATE, rep.sample_rate)
        for check, feature, output in rep.checks:
            self.fire(prediction, check, feature, output)

    def fire(self, prediction: Ended | None, check: str, feature: str, output: bool) -> None:
        """Count one violation of ``check``; mark the prediction's span when there is one."""
        with self._lock:
            self._count_violation((check, feature, output))
        if prediction is not None:
            if check not in prediction.checks_fired:
                prediction.checks_fired.append(check)
            span = prediction.span
            if span.is_recording():
                attr = A.ML_OUTPUT if output else A.ML_FEATURE
                span.add_event(A.EVENT_CHECK_VIOLATION, {A.ML_CHECK: check, attr: feature})

    def _count_violation(self, key: tuple[str, str, bool]) -> None:
        """Count one violation of ``(check, feature, output side)`` (lock held)."""
        n = self._violations.get(key)
        if n is None:
            attr = A.ML_OUTPUT if key[2] else A.ML_FEATURE
            self._violation_attrs[key] = {**self._base, A.ML_CHECK: key[0], attr: key[1]}
            n = 0
        self._violations[key] = n + 1

    def _count_cut(self, n: int) -> None:
        if n:
            count_skipped(SKIP_MAX_FEATURES, n)
            self._warn_cut(n)

    def _warn_cut(self, n: int) -> None:
        health.warn_once(
            "max_features:" + self.model,
            "modelotel: model %r has more columns than max_features; %d column(s) get no "
            "statistics (raise max_features= or MODELOTEL_MAX_FEATURES to keep them)",
            self.model,
            n,
        )

    # ---- collection ------------------------------------------------------------------
    def begin_collection(self, cb: int) -> None:
        """Callback ``cb`` of a metric collection is about to read this part.

        A callback that already read the current points means a new collection began: the
        window is closed first (normally by the first registered callback).
        """
        with self._collect_lock:
            consumed = self._consumed
            if consumed is None or cb in consumed:
                self.close_window()
                self._consumed = {cb}
            else:
                consumed.add(cb)

    def close_window(self) -> None:
        """End the current window and make its snapshot the points the callbacks read."""
        snap = self.profiler.close()
        seen = tuple(tuple(s.totals.seen) if s is not None else () for s in
                     (snap.inputs, snap.outputs))
        if runtime.hold_empty_windows and self._points and seen == self._seen:
            return  # nothing new since the last close: a second look sees the same window
        self._seen = seen
        checks = snap.outputs.checks if snap.outputs is not None else ()
        if checks:
            with self._lock:
                for check, feature in checks:
                    self._count_violation((check, feature, True))
        self._points = self._observations(snap)

    def points(self, metric: str) -> Points:
        """``(value, attributes)`` of ``metric`` from the last closed window (gauges,
        drift) and the running totals as of its close (counters)."""
        return self._points.get(metric, ())

    def violation_points(self) -> Points:
        """``(count, attributes)`` per (check, feature) that fired since the last reset."""
        with self._lock:
            return [(n, self._violation_attrs[k]) for k, n in self._violations.items()]

    def _observations(self, snap: Snapshot) -> dict[str, list[tuple[float, Attributes]]]:
        out: dict[str, list[tuple[float, Attributes]]] = {}
        for output, s in ((False, snap.inputs), (True, snap.outputs)):
            if s is None:
                continue
            names = _NAMES[output]
            labels = self._labels[output]
            if labels is None or labels.plan is not s.plan:
                labels = self._labels[output] = _Labels(self._base, names.attr, s)
            t = s.totals
            out[names.count] = list(zip(t.seen, labels.columns, strict=True))
            missing: list[tuple[float, Attributes]] = []
            n_num = len(t.nan)
            for j, (nan, inf) in enumerate(zip(t.nan, t.inf, strict=True)):
                m = labels.missing[j]
                missing += [(t.null[j], m[A.MISSING_NULL]), (nan, m[A.MISSING_NAN]),
                            (inf, m[A.MISSING_INF])]
            for i in range(n_num, len(t.null)):
                missing.append((t.null[i], labels.missing[i][A.MISSING_NULL]))
            out[names.missing] = missing
            bins: list[tuple[float, Attributes]] = []
            for counts, attrs in zip(t.bins, labels.bins, strict=True):
                bins.extend(zip(counts, attrs, strict=True))
            out[names.bin] = bins
            for stat, feature, value in s.gauges:
                if math.isfinite(value):
                    out.setdefault(names.gauges[stat], []).append(
                        (value, labels.by_name[feature]))
            for feature, method, value in s.drift:
                if math.isfinite(value):
                    out.setdefault(names.drift, []).append(
                        (value, labels.drift[feature, method]))
        return out


__all__ = ["StatsPart"]
